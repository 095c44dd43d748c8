"""Phone numbers for CAPI's ``ph``: E.164 digits, from whatever a form or a shop sends.

Split out of ``normalize`` (which keeps the other keys' rules and calls ``normalize_phone``).
phonenumbers is imported lazily: its import and region metadata cost tens of ms on a cold
start, which an instance that never sees a phone should not pay.
"""

from __future__ import annotations

import functools
import re
from typing import Any


def normalize_phone(text: str, country: str | None) -> str | None:
    """ph: digits only, with the country calling code, no leading zeros (E.164 without "+").

    Meta: "Remove symbols, letters, and any leading zeros. Phone numbers must include a country
    code." Our rule, using phonenumbers (loaded lazily):
      1. "00" prefix is read as "+" (international call prefix).
      2. A value starting with "+" is parsed as international.
      3. Otherwise, with ``country`` (alpha-2), it is parsed as a national number of that
         country (so a trunk "0" is dropped and the calling code added), and also as
         international by prefixing "+" (leading zeros removed first), in case the digits
         already carry a calling code. The national reading goes first unless the digits start
         with that country's own calling code. Without ``country`` only the "+" reading is tried.
      4. The first attempt phonenumbers calls *valid* wins; failing that, the first one it
         calls *possible* (right length for the country); failing that, None.
    The output is the E.164 form minus "+": e.g. "(650)555-1212" with country "us" ->
    "16505551212". Stricter than Meta's SDK, which keeps any 7+ digit string it can match.

    A number given with "+" (or "00") and its calling code is only checked for being
    *possible*, never *valid*: Meta does not check validity, and a range a country allocates
    after our phonenumbers release must not be dropped. Full parsing, and the validity check
    that picks between readings, happen only where a calling code may have to be added.

    ``text`` is trimmed NFC text (``normalize`` prepares it); ``country`` a lowercase alpha-2
    code or None. Plain inputs (ASCII digits and `` ().-``) take a shortcut that gives the same
    answer without ``phonenumbers.parse`` (see ``_PhonePlans``); anything else takes the
    general path.
    """
    if not text:
        return None
    # phonenumbers is imported lazily (~25-35 ms on a cold start): by _phone_plans for the
    # shortcuts, below for the general path
    if text.startswith("00"):
        text = "+" + text[2:]
    attempts: list[tuple[str, str | None]] = []
    if text.startswith("+"):
        quick = _phone_plans().international(text)
        if quick is not _UNDECIDED:
            return quick
        attempts.append((text, None))
    else:
        code = country
        digits_first = text.lstrip("0 ")
        if code:
            quick = _phone_plans().national(text, code.upper())
            if quick is not _UNDECIDED:
                return quick
        elif digits_first:  # the "+" reading is the only attempt
            quick = _phone_plans().international("+" + digits_first)
            if quick is not _UNDECIDED:
                return quick
        if digits_first:
            attempts.append(("+" + digits_first, None))
        if code:
            import phonenumbers

            national = (text, code.upper())
            calling_code = str(phonenumbers.country_code_for_region(code.upper()))
            digits = "".join(ch for ch in text if ch.isdigit())
            # Digits that already begin with the country's own calling code (no trunk "0") are
            # read as international first: for variable-length plans such as Germany's,
            # "4930123456" is otherwise also a valid national number (+49 4930123456).
            if text[0] != "0" and digits.startswith(calling_code):
                attempts.append(national)
            else:
                attempts.insert(0, national)
    return _first_valid_or_possible(attempts)


def _first_valid_or_possible(attempts: list[tuple[str, str | None]]) -> str | None:
    """Step 4 of ``_normalize_phone``: the general path, through ``phonenumbers.parse``."""
    import phonenumbers

    chosen = None
    for raw, region in attempts:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            chosen = number
            break
        if chosen is None and phonenumbers.is_possible_number(number):
            chosen = number
    if chosen is None:
        return None
    e164 = phonenumbers.format_number(chosen, phonenumbers.PhoneNumberFormat.E164)
    return e164.lstrip("+") or None


#: "the shortcut cannot tell; take the general path"
_UNDECIDED = object()
#: What a plain phone may hold besides ASCII digits, after an optional leading "+".
_PLAIN_PHONE_RE = re.compile(r"[0-9 ().-]*[0-9]")
_PHONE_SEPARATORS = b" ().-"


def _plain_digits(text: str) -> str:
    """The digits of text ``_PLAIN_PHONE_RE`` matched (ASCII only): the separators deleted by
    ``bytes.translate``, a third of what ``str.translate`` with a deletion table costs."""
    return text.encode("ascii").translate(None, _PHONE_SEPARATORS).decode("ascii")


class _PhonePlans:
    """``phonenumbers.parse`` for plain inputs, in a few dictionary and regex steps.

    ``parse`` spends most of its ~25 µs on generic text handling (RFC 3966 ``tel:`` URIs,
    extensions, vanity letters, non-ASCII digits); a number from a form or sGTM is usually
    ASCII digits with spaces, dashes, dots or parentheses. For those the text handling
    reduces to "keep the digits", and these methods replay the rest of ``parse`` for them
    step by step (same order, same library data; see the comments), then apply the library's
    own ``is_possible_number``/``is_valid_number``. Any case they do not cover returns
    ``_UNDECIDED`` and the caller runs the general path. tests/unit/test_normalize.py checks
    both paths agree on the conformance rows and on thousands of generated numbers.
    """

    def __init__(self) -> None:
        import phonenumbers
        from phonenumbers import phonenumberutil as util

        self.lib = phonenumbers
        self.regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
        # Private helpers of parse(), used by the national shortcut only; if a future
        # phonenumbers renames them, that shortcut turns itself off.
        self.strip_prefix = getattr(util, "_maybe_strip_national_prefix_carrier_code", None)
        self.test_length = getattr(util, "_test_number_length", None)
        self.leading_zeros = getattr(util, "_set_italian_leading_zeros_for_phone_number", None)
        results = getattr(util, "ValidationResult", None)
        self.keep_stripped_unless = (results.TOO_SHORT, results.IS_POSSIBLE_LOCAL_ONLY,
                                     results.INVALID_LENGTH) if results else ()
        self.national_ok = None not in (self.strip_prefix, self.test_length, self.leading_zeros,
                                        results)
        self._by_code: dict[int, tuple[Any, Any]] = {}
        self._by_region: dict[str, tuple[int, str, Any, Any] | None] = {}
        self._main_region: dict[int, str] = {}
        self._lengths: dict[int, frozenset[int] | None] = {}
        self._types: dict[str, Any] = {}
        self._strips: dict[str, tuple[Any, Any, frozenset[int]] | None] = {}

    def _code_plan(self, code: int) -> tuple[Any, Any]:
        """(metadata, national-prefix regex or None) for a calling code, as parse looks them up."""
        plan = self._by_code.get(code)
        if plan is None:
            region = self.lib.region_code_for_country_code(code)
            metadata = self.lib.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
            prefix = metadata.national_prefix_for_parsing if metadata is not None else None
            plan = self._by_code[code] = (metadata, re.compile(prefix) if prefix else None)
        return plan

    def international(self, text: str) -> str | None | object:
        """E.164 digits for "+<plain number>", None if phonenumbers rejects it, or _UNDECIDED.

        Mirrors parse(text, None) + "valid or possible": strip the "+", keep the digits, take
        the calling code (1-3 leading digits that are a known code, as _extract_country_code),
        then the national-prefix step, which is a no-op when the prefix pattern does not match.
        """
        if len(text) > 250 or not _PLAIN_PHONE_RE.fullmatch(text, 1):
            return _UNDECIDED
        digits = _plain_digits(text[1:])
        if len(digits) <= 2 or digits[0] == "0":  # parse raises here; let it say so
            return _UNDECIDED
        for size in (1, 2, 3):
            code = int(digits[:size])
            if code in self.regions:
                break
        else:
            return _UNDECIDED
        national = digits[size:]
        if not 2 <= len(national) <= 17 or national[0] == "0":  # too short/long, Italian zero
            return _UNDECIDED
        metadata, prefix = self._code_plan(code)
        if metadata is None or (prefix is not None and prefix.match(national)):
            return _UNDECIDED  # parse would try stripping a national prefix
        lengths = self._possible_lengths(code)
        if lengths is not None:
            return digits if len(national) in lengths else None
        number = self.lib.PhoneNumber(country_code=code, national_number=int(national))
        if self.lib.is_possible_number(number):
            return digits  # E.164 = calling code + national number, which is all the digits
        return None

    def _possible_lengths(self, code: int) -> frozenset[int] | None:
        """The national-number lengths ``is_possible_number`` accepts for a calling code, or
        None to ask the library. For an unknown number type it tests the length against the
        general description of the calling code's main region: its possible lengths, plus
        the local-only ones (possible too); a first length of -1 means none. Computed once
        per code instead of on every number."""
        if code not in self._lengths:
            found = None
            region = self.lib.region_code_for_country_code(code)
            metadata = self.lib.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
            general = getattr(metadata, "general_desc", None)
            possible = getattr(general, "possible_length", None)
            local = getattr(general, "possible_length_local_only", None) or ()
            if possible:
                found = frozenset(() if possible[0] == -1 else (*possible, *local))
            self._lengths[code] = found
        return self._lengths[code]

    def national(self, text: str, region: str) -> str | None | object:
        """E.164 digits when the national reading of a plain number is *valid*, else _UNDECIDED.

        Only the valid case is decided here: it is attempt 1 of ``_normalize_phone`` (national
        first) and wins outright. Mirrors parse(text, region): keep the digits; no
        international prefix of the region and no leading calling code (else parse takes other
        branches); strip the national prefix unless too little would be left; leading zeros.
        """
        if not self.national_ok or len(text) > 250 or not _PLAIN_PHONE_RE.fullmatch(text):
            return _UNDECIDED
        plan = self._region_plan(region)
        if plan is None:
            return _UNDECIDED
        code, code_text, idd, metadata = plan
        digits = _plain_digits(text)
        if len(digits) < 3 or digits.startswith(code_text) or (idd and idd.match(digits)):
            return _UNDECIDED
        strip = self._strip_plan(region, metadata)
        if strip is None:
            _, stripped, _ = self.strip_prefix(digits, metadata)
            keep = self.test_length(stripped, metadata) in self.keep_stripped_unless
        else:
            stripped, keep = self._strip_national_prefix(digits, strip)
        if not keep:
            digits = stripped
        if not digits or len(digits) > 17:
            return _UNDECIDED
        if self._valid(code, digits):
            return code_text + digits  # the national significant number keeps leading zeros
        return _UNDECIDED

    def _strip_plan(self, region: str, metadata: Any) -> tuple[Any, Any, frozenset[int]] | None:
        """(national-prefix regex or None, general pattern or None, lengths after which the
        stripped number is not kept) for a region whose prefix has no transform rule; None
        (ask the library) otherwise. ``_test_number_length`` for an unknown type looks at the
        length alone, so its verdict is computed once per length (up to 250, the longest text
        taken here)."""
        if region not in self._strips:
            plan = None
            if not metadata.national_prefix_transform_rule:
                prefix = metadata.national_prefix_for_parsing
                general = getattr(metadata.general_desc, "national_number_pattern", None)
                keep = frozenset(length for length in range(251) if self.test_length(
                    "0" * length, metadata) in self.keep_stripped_unless)
                plan = (re.compile(prefix) if prefix else None,
                        re.compile(general) if general else None, keep)
            self._strips[region] = plan
        return self._strips[region]

    @staticmethod
    def _strip_national_prefix(digits: str, plan: tuple[Any, Any, frozenset[int]]
                               ) -> tuple[str, bool]:
        """(digits without the national prefix, keep the unstripped digits instead): what
        ``_maybe_strip_national_prefix_carrier_code`` and ``_test_number_length`` decide for a
        region without a transform rule. The prefix goes unless the digits fit the region's
        general pattern with it and not without it."""
        prefix, general, keep = plan
        stripped = digits
        if prefix is not None:
            match = prefix.match(digits)
            if match:
                rest = digits[match.end():]
                if general is None or not general.fullmatch(digits) or general.fullmatch(rest):
                    stripped = rest
        return stripped, len(stripped) in keep

    def _number(self, code: int, nsn: str) -> Any:
        """The PhoneNumber ``parse`` builds for calling code ``code`` and national significant
        number ``nsn`` (leading zeros recorded as it records them)."""
        number = self.lib.PhoneNumber(country_code=code)
        self.leading_zeros(nsn, number)
        number.national_number = int(nsn)
        return number

    def _valid(self, code: int, nsn: str) -> bool:
        """``phonenumbers.is_valid_number`` for the number with calling code ``code`` and
        national significant number ``nsn``, with its type patterns matched in one regex where
        it can; the PhoneNumber object is built only when the library has to be asked.

        is_valid_number finds the number's region, then asks whether any number type (premium
        rate ... fixed line, mobile) matches: the general pattern first, then each type's
        lengths and pattern in turn. ``_types_by_length`` joins, per length, the patterns of
        the types that allow it, so one match answers "any type". For a calling code with
        one region that region decides alone. For a code shared by several regions (1: US,
        CA, ...; 44: GB, GG, ...), the search tries them in order; when the first has no
        leading-digits pattern and the number is valid there, the search stops at it, so a
        yes from it is the library's yes; a no goes to the library.
        """
        lib = self.lib
        main = self._main_region.get(code)
        if main is None:
            regions = self.regions[code]
            metadata = lib.PhoneMetadata.metadata_for_region(regions[0], None)
            alone = len(regions) == 1 and metadata is not None
            first = (len(regions) > 1 and metadata is not None
                     and metadata.leading_digits is None)
            main = ("=" + regions[0]) if alone else regions[0] if first else ""
            self._main_region[code] = main
        if main:
            region = main.lstrip("=")
            types = self._types_by_length(region)
            if types is not None:
                general_lengths, general, by_length = types
                pattern = by_length.get(len(nsn))
                if type(pattern) is str:
                    pattern = by_length[len(nsn)] = re.compile(pattern)
                if ((not general_lengths or len(nsn) in general_lengths)
                        and general.fullmatch(nsn) and pattern is not None
                        and pattern.fullmatch(nsn)):
                    return True
                if main[0] == "=":
                    return False  # the only region said no: so does is_valid_number
            elif lib.is_valid_number_for_region(self._number(code, nsn), region):
                return True
        return lib.is_valid_number(self._number(code, nsn))

    #: the number types is_valid_number tries, as PhoneMetadata attributes
    _TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
              "uan", "voicemail", "fixed_line", "mobile")

    def _types_by_length(self, region: str) -> Any:
        """(general lengths, general pattern, {length: one regex of every type allowing that
        length, as its source text until ``_valid`` first compiles it}) for a region, or None
        when its metadata has no general pattern."""
        if region not in self._types:
            found = None
            metadata = self.lib.PhoneMetadata.metadata_for_region(region, None)
            general = getattr(metadata, "general_desc", None)
            if general is not None and general.national_number_pattern:
                by_length = {}
                for length in range(1, 18):
                    patterns = []
                    for name in self._TYPES:
                        desc = getattr(metadata, name, None)
                        if desc is None or not desc.national_number_pattern:
                            continue
                        if desc.possible_length and length not in desc.possible_length:
                            continue
                        patterns.append(f"(?:{desc.national_number_pattern})")
                    if patterns:  # compiled on first use: a region sees few lengths
                        by_length[length] = "|".join(patterns)
                found = (frozenset(general.possible_length or ()),
                         re.compile(general.national_number_pattern), by_length)
            self._types[region] = found
        return self._types[region]

    def _region_plan(self, region: str) -> tuple[int, str, Any, Any] | None:
        if region not in self._by_region:
            plan = None
            if region in self.lib.SUPPORTED_REGIONS:
                metadata = self.lib.PhoneMetadata.metadata_for_region(region, None)
                idd = metadata.international_prefix
                plan = (metadata.country_code, str(metadata.country_code),
                        re.compile(idd) if idd is not None else None, metadata)
            self._by_region[region] = plan
        return self._by_region[region]


@functools.lru_cache(maxsize=None)
def _phone_plans() -> _PhonePlans:
    return _PhonePlans()
