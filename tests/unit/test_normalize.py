"""Unit tests for capi_relay.core.normalize: IPs, countries, dates, phones, NFC, cold start."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from capi_relay.core import normalize as norm
from capi_relay.core import phone
from capi_relay.core.model import HASHED_KEYS, NEVER_HASHED_KEYS
from capi_relay.core.normalize import (
    is_parameter_builder_value,
    is_sha256,
    normalize,
    normalize_country,
    normalize_ip,
    prepare,
    sha256_hex,
)
from capi_relay.core.regions import COUNTRY_ALIASES, ISO_ALPHA2, STATE_CODES, STATE_NAMES

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
HASH = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"  # Meta's em example


# --- hashing primitives ----------------------------------------------------------------------

def test_sha256_hex_is_lowercase_hex_of_utf8() -> None:
    assert sha256_hex("john_smith@gmail.com") == HASH
    assert sha256_hex("정") == "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"


@pytest.mark.parametrize("value, expected", [
    (HASH, True), (HASH.upper(), True), (HASH[:63], False), (HASH + "0", False),
    (HASH[:63] + "g", False), (" " + HASH, False), (None, False), (12, False),
])
def test_is_sha256(value: object, expected: bool) -> None:
    assert is_sha256(value) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value, expected", [
    (HASH + ".AQ", True), (HASH + ".Bg", True), (HASH + ".AQIBAQMC", True),
    (HASH.upper() + ".Ag", True), (HASH + ".AQIB-_MC", True),
    (HASH, False), (HASH + ".", False), (HASH + ".ZZ", False), (HASH + ".AQIBAQM", False),
    (HASH + ".AQIBAQMC1", False), (HASH[:32] + ".AQ", False), ("fb.1.123.abc.AQ", False),
])
def test_is_parameter_builder_value(value: str, expected: bool) -> None:
    assert is_parameter_builder_value(value) is expected


# --- prepare: dispatch and pass-through ------------------------------------------------------

def test_every_hashed_key_has_a_rule_and_nothing_else() -> None:
    assert set(norm._RULES) == set(HASHED_KEYS)


@pytest.mark.parametrize("key", HASHED_KEYS)
def test_hashed_keys_pass_hashes_through(key: str) -> None:
    assert prepare(key, HASH.upper()) == HASH
    assert prepare(key, f"  {HASH}  ") == HASH
    assert prepare(key, HASH + ".AQIBAQMC") == HASH + ".AQIBAQMC"


@pytest.mark.parametrize("key", HASHED_KEYS)
def test_hashed_keys_drop_empty_values(key: str) -> None:
    for value in (None, "", "   ", True, [], {}):
        assert prepare(key, value) is None
        assert normalize(key, value) is None


@pytest.mark.parametrize("key", [k for k in NEVER_HASHED_KEYS if k != "client_ip_address"])
def test_never_hashed_keys_are_trimmed_not_hashed(key: str) -> None:
    assert prepare(key, "  Value.With.Case  ") == "Value.With.Case"
    assert prepare(key, HASH.upper()) == HASH.upper()
    assert prepare(key, "") is None
    assert prepare(key, None) is None


def test_unknown_key_raises_key_error() -> None:
    with pytest.raises(KeyError):
        prepare("email", "a@b.co")
    with pytest.raises(KeyError):
        normalize("client_ip_address", "1.2.3.4")


def test_prepare_hashes_the_normalized_text() -> None:
    expected = hashlib.sha256(b"16505551212").hexdigest()
    assert prepare("ph", "(650) 555-1212", country="us") == expected


# --- NFC -------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, text", [
    ("fn", "Valéry"), ("ln", "Müller"), ("ct", "Zürich"), ("st", "Île-de-France"),
    ("em", "josé@example.com"), ("external_id", "Zoë-42"),
])
def test_composed_and_decomposed_input_hash_the_same(key: str, text: str) -> None:
    composed = unicodedata.normalize("NFC", text)
    decomposed = unicodedata.normalize("NFD", text)
    assert composed != decomposed
    assert prepare(key, composed, country="fr") == prepare(key, decomposed, country="fr")
    assert prepare(key, composed, country="fr") is not None


def test_meta_valery_example_holds_for_decomposed_input() -> None:
    assert prepare("fn", unicodedata.normalize("NFD", "Valéry")) == (
        "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"
    )


# --- IP addresses ----------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("1.2.3.4", "1.2.3.4"),
    (" 1.2.3.4 ", "1.2.3.4"),
    ("1.2.3.4:567", "1.2.3.4"),
    ("203.0.113.9, 10.0.0.1, 172.16.0.1", "203.0.113.9"),
    ("2001:DB8::1", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("[2001:db8::1]:443, 1.2.3.4", "2001:db8::1"),
    ("fe80::1%eth0", "fe80::1"),
    ("::ffff:1.2.3.4", "1.2.3.4"),
    ("10.0.0.1", "10.0.0.1"),
    ("::1", "::1"),
])
def test_normalize_ip_valid(value: str, expected: str) -> None:
    assert normalize_ip(value) == expected
    assert prepare("client_ip_address", value) == expected


@pytest.mark.parametrize("value", [
    None, "", "  ", "unknown", "999.1.1.1", "1.2.3", "01.2.3.4", "1.2.3.4:", "1.2.3.4:http",
    "[2001:db8::1", "[2001:db8::1]x", "[2001:db8::1]:", "2001:db8::g", ", 1.2.3.4", 1234,
])
def test_normalize_ip_invalid(value: object) -> None:
    assert normalize_ip(value) is None


# --- countries -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("us", "us"), ("US", "us"), (" De ", "de"), ("U.S.", "us"),
    ("USA", "us"), ("usa", "us"), ("United States", "us"), ("united states of america", "us"),
    ("UK", "gb"), ("U.K.", "gb"), ("Great Britain", "gb"), ("United Kingdom", "gb"), ("GBR", "gb"),
    ("Germany", "de"), ("germany", "de"), ("GERMANY", "de"), ("DEU", "de"), ("deu", "de"),
    ("Russia", "ru"), ("Russian Federation", "ru"), ("South Korea", "kr"),
    ("Korea, Republic of", "kr"),
    ("Czech Republic", "cz"), ("Czechia", "cz"), ("Côte d'Ivoire", "ci"), ("Ivory Coast", "ci"),
    ("Türkiye", "tr"), ("Turkey", "tr"), ("The Netherlands", "nl"), ("Viet Nam", "vn"),
])
def test_normalize_country(value: str, expected: str) -> None:
    assert normalize_country(value) == expected


@pytest.mark.parametrize("value", [
    None, "", "  ", "xx", "uk1", "Narnia", "Korea", "Germ", "EU", 42, True,
])
def test_normalize_country_unknown(value: object) -> None:
    assert normalize_country(value) is None


def test_no_fuzzy_country_matching() -> None:
    assert normalize_country("Germanyy") is None
    assert normalize_country("United Stat") is None


def test_iso_alpha2_table_matches_pycountry() -> None:
    pycountry = pytest.importorskip("pycountry")
    assert ISO_ALPHA2 == {c.alpha_2.lower() for c in pycountry.countries}


def test_country_tables_answer_as_pycountry_does() -> None:
    """The country lookups read from pycountry's data file without importing pycountry give
    pycountry's own answers: every field of every record, in its case and in lower and upper
    case, and a few values pycountry does not know."""
    pycountry = pytest.importorskip("pycountry")
    from capi_relay.core import normalize as module

    tables = module._country_tables()
    assert tables is not None  # the data file was found: the fast path is the one tested
    by_alpha_3, by_value = tables
    checked = 0
    for country in pycountry.countries:
        for value in dict(country).values():
            for text in {value, value.lower(), value.upper()}:
                try:
                    expected = pycountry.countries.lookup(text).alpha_2.lower()
                except LookupError:
                    expected = None
                assert by_value.get(text.lower()) == expected, text
                checked += 1
        found = pycountry.countries.get(alpha_3=country.alpha_3)
        assert by_alpha_3[country.alpha_3.lower()] == found.alpha_2.lower()
    assert checked > 1000
    for text in ("Germanyy", "United Stat", "xyz", "Atlantis"):
        with pytest.raises(LookupError):
            pycountry.countries.lookup(text)
        assert by_value.get(text.lower()) is None
    for text in ("United States", "germany", "Federal Republic of Germany", "DEU", "Bolivia",
                 "bolivia, plurinational state of", "Taiwan, Province of China"):
        key = module._compact_key(text)
        assert module._country_from_text.__wrapped__(text) == module._pycountry_lookup(key, text)


def test_country_aliases_are_needed_and_valid() -> None:
    assert set(COUNTRY_ALIASES.values()) <= ISO_ALPHA2
    assert all(k.isalpha() and k.islower() and k.isascii() for k in COUNTRY_ALIASES)


def test_state_tables_are_consistent() -> None:
    assert set(STATE_NAMES) == set(STATE_CODES) == {"us", "ca"}
    for country, names in STATE_NAMES.items():
        assert set(names.values()) <= STATE_CODES[country]
        assert all(len(code) == 2 for code in STATE_CODES[country])
        assert all(k.isalpha() and k.isascii() and k.islower() for k in names)
    assert not STATE_CODES["us"] & STATE_CODES["ca"]


# --- phone -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, country, expected", [
    ("(650)555-1212", "us", "16505551212"),
    ("(650)555-1212", "US", "16505551212"),
    ("650-555-1212", "usa", "16505551212"),
    ("+1 650 555 1212", None, "16505551212"),
    ("+1 650 555 1212", "de", "16505551212"),
    ("001 650 555 1212", None, "16505551212"),
    ("1 (650) 555-1212", None, "16505551212"),
    ("16505551212", "de", "16505551212"),
    ("0044 20 7946 0958", None, "442079460958"),
    ("020 7946 0958", "gb", "442079460958"),
    ("07911 123456", "gb", "447911123456"),
    ("0151 12345678", "de", "4915112345678"),
    ("4915112345678", "de", "4915112345678"),
    ("49 30 1234567", "de", "49301234567"),
    ("339 123 4567", "it", "393391234567"),
    ("0612345678", "fr", "33612345678"),
    ("+39 06 1234 5678", None, "390612345678"),
    ("+1 650 555 1212 ext. 7", None, "16505551212"),
    (16505551212, None, "16505551212"),
    (6505551212.0, "us", "16505551212"),
])
def test_phone_valid(value: object, country: str | None, expected: str) -> None:
    assert normalize("ph", value, country=country) == expected


@pytest.mark.parametrize("value, country", [
    ("12345", "us"), ("1", None), ("phone", None), ("+", None), ("00", None), ("", "us"),
    ("+0 123 456", None),
])
def test_phone_impossible_is_dropped(value: str, country: str | None) -> None:
    assert normalize("ph", value, country=country) is None


def test_phone_without_country_keeps_possible_digits() -> None:
    # A national number with no country: read as international ("+" prefixed). Meta matches
    # only with the calling code, so this is a best effort, kept because phonenumbers calls it
    # possible (the rule the relay documents): 65 = Singapore.
    assert normalize("ph", "(650)555-1212") == "6505551212"


# --- dates -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("1990-05-17", "19900517"), ("1990/05/17", "19900517"), ("1990.5.7", "19900507"),
    ("19900517", "19900517"), ("17.05.1990", "19900517"), ("7.5.1990", "19900507"),
    ("05/17/1990", "19900517"), ("17/05/1990", "19900517"), ("05/06/1990", "19900506"),
    ("05-17-1990", "19900517"), ("1990-05-17T00:00:00Z", "19900517"),
    ("1990-05-17T23:30:00+02:00", "19900517"), ("1990-05-17 08:00", "19900517"),
    ("2000-02-29", "20000229"), ("1900-01-01", "19000101"), ("2100-12-31", "21001231"),
    (dt.date(1990, 5, 17), "19900517"), (dt.datetime(1990, 5, 17, 12, 0), "19900517"),
    (19900517, "19900517"),
])
def test_birth_date_valid(value: object, expected: str) -> None:
    assert normalize("db", value) == expected


@pytest.mark.parametrize("value", [
    "1899-12-31", "2101-01-01", "1990-13-01", "1990-02-30", "1999-02-29", "13/13/1990",
    "90-05-17", "17.05.90", "1990", "199005", "May 17, 1990", "1990-05-17T", "0000-00-00",
    dt.date(1850, 1, 1),
])
def test_birth_date_invalid(value: object) -> None:
    assert normalize("db", value) is None


# --- names, city, state, zip, gender, email, external_id --------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("Mary", "mary"), ("  MARY  ", "mary"), ("Mary-Ann", "maryann"), ("O’Neil", "oneil"),
    ("de la Cruz", "delacruz"), ("José", "josé"), ("Łukasz", "łukasz"), ("정", "정"),
    ("Иван", "иван"), ("محمد", "محمد"), ("John3", "john3"), ("Ann 😀", "ann"),
    ("Ann\tMarie", "annmarie"), ("...", None),
])
def test_names(value: str, expected: str | None) -> None:
    assert normalize("fn", value) == expected
    assert normalize("ln", value) == expected


@pytest.mark.parametrize("value, expected", [
    ("New York", "newyork"), ("St. Louis", "stlouis"), ("Winston-Salem", "winstonsalem"),
    ("São Paulo", "sãopaulo"), ("München", "münchen"), ("東京", "東京"), ("Paris 15", "paris"),
    ("123", None),
])
def test_city(value: str, expected: str | None) -> None:
    assert normalize("ct", value) == expected


@pytest.mark.parametrize("value, country, expected", [
    ("California", None, "ca"), ("california", "us", "ca"), ("CA", "us", "ca"),
    ("New York", None, "ny"), ("new york", "US", "ny"), ("N.Y.", None, "ny"),
    ("District of Columbia", "us", "dc"), ("Puerto Rico", None, "pr"),
    ("Ontario", None, "on"), ("Ontario", "ca", "on"), ("Québec", "ca", "qc"),
    ("British Columbia", "ca", "bc"), ("Colombie-Britannique", "ca", "bc"),
    ("Calif.", "us", None), ("Bavaria", "us", None), ("Ontario", "us", None),
    ("Bayern", "de", "bayern"), ("Île-de-France", "fr", "îledefrance"),
    ("New South Wales", "au", "newsouthwales"), ("NSW", "au", "nsw"),
    ("Bavaria", None, "bavaria"), ("Georgia", "ge", "georgia"), ("-", None, None),
])
def test_state(value: str, country: str | None, expected: str | None) -> None:
    assert normalize("st", value, country=country) == expected


@pytest.mark.parametrize("value, country, expected", [
    ("94025", None, "94025"), ("94025", "us", "94025"), ("94025-1234", None, "94025"),
    ("94025-1234", "us", "94025"), ("94025 - 1234", "us", "94025"), ("940251234", "us", "94025"),
    ("940251234", None, "940251234"), ("9402", "us", None), ("94025-12", "us", None),
    ("SW1A 1AA", "gb", "sw1a1aa"), ("SW1A 1AA", None, "sw1a1aa"), ("00-950", "pl", "00950"),
    ("M5V 3L9", "CA", "m5v3l9"), ("75008", "fr", "75008"), ("1010", "at", "1010"),
    (94025, "us", "94025"), ("-", None, None),
])
def test_zip(value: object, country: str | None, expected: str | None) -> None:
    assert normalize("zp", value, country=country) == expected


@pytest.mark.parametrize("value, expected", [
    ("f", "f"), ("F", "f"), ("female", "f"), ("Woman", "f"), ("w", "f"), ("Frau", "f"),
    ("femme", "f"), ("Mujer", "f"), ("m", "m"), ("MALE", "m"), ("man", "m"), ("Herr", "m"),
    ("homme", "m"), ("hombre", "m"), ("männlich", "m"),
    ("x", None), ("other", None), ("unknown", None), ("mf", None),
])
def test_gender(value: str, expected: str | None) -> None:
    assert normalize("ge", value) == expected


@pytest.mark.parametrize("value, expected", [
    ("John_Smith@gmail.com", "john_smith@gmail.com"),
    (" first.last+tag@Gmail.com ", "first.last+tag@gmail.com"),
    ("user@sub.example.co.uk", "user@sub.example.co.uk"),
    ("ünïcode@exämple.de", "ünïcode@exämple.de"),
    ("plain", None), ("@example.com", None), ("a@example", None), ("a@.example.com", None),
    ("a@example.com.", None), ("a@example..com", None), ("a@b@c.com", None),
    ("a b@example.com", None), ("a@exa mple.com", None),
    ("first..last@example.com", None), ("a..@example.com", None),  # issue 15: dot-atom
])
def test_email(value: str, expected: str | None) -> None:
    assert normalize("em", value) == expected


def test_external_id_keeps_case_and_inner_characters() -> None:
    assert normalize("external_id", "  AbC-123 x ") == "AbC-123 x"
    assert normalize("external_id", 12345) == "12345"
    assert prepare("external_id", "AbC") != prepare("external_id", "abc")


def test_country_key_hashes_alpha2() -> None:
    expected = hashlib.sha256(b"us").hexdigest()
    assert prepare("country", "United States") == expected
    assert prepare("country", "USA") == expected
    assert prepare("country", "Narnia") is None


# --- cold start ------------------------------------------------------------------------------

def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(FUNCTIONS_DIR)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def test_import_does_not_load_phonenumbers_or_pycountry() -> None:
    result = _run(
        "import sys, capi_relay.core.normalize as n\n"
        "n.prepare('em', 'a@example.com'); n.prepare('country', 'US'); n.prepare('country', 'UK')\n"
        "n.prepare('st', 'California'); n.prepare('client_ip_address', '1.2.3.4')\n"
        "loaded = sorted(m for m in ('phonenumbers', 'pycountry') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_heavy_libraries_load_only_when_needed() -> None:
    # pycountry is never imported: its data file is read directly (_country_tables)
    result = _run(
        "import sys, capi_relay.core.normalize as n\n"
        "n.prepare('ph', '+16505551212'); a = 'phonenumbers' in sys.modules\n"
        "c = n.prepare('country', 'Germany') == n.sha256_hex('de')\n"
        "c = c and n.normalize_country('Federal Republic of Germany') == 'de'\n"
        "b = 'pycountry' in sys.modules\n"
        "print(a, b, c)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True False True"


# --- speed tricks keep the answers -----------------------------------------------------------

class _NoShortcut:
    """Stands in for phone._PhonePlans: every shortcut declines, so the general path
    (phonenumbers.parse for each attempt) decides every number."""

    def international(self, text: str) -> object:
        return phone._UNDECIDED

    def national(self, text: str, region: str) -> object:
        return phone._UNDECIDED


def _phone_samples(count: int, seed: int) -> list[tuple[object, str | None]]:
    """Plain and messy phone inputs: E.164, "00", national numbers for every region, random
    digits, separators and junk, with countries that match, differ or are missing."""
    import random

    import phonenumbers

    rng = random.Random(seed)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    countries = [None, "us", "gb", "de", "fr", "it", "ca", "au", "br", "ru", "kz", "in", "aq",
                 "United States", "UK", ""] + [r.lower() for r in regions]
    samples: list[tuple[object, str | None]] = []
    for region in regions:  # every region's example numbers, as their own nationals would type
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for style in (phonenumbers.PhoneNumberFormat.E164,
                          phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                          phonenumbers.PhoneNumberFormat.NATIONAL):
                samples.append((phonenumbers.format_number(example, style), region.lower()))
            # trunk prefixes where they do not belong, cut-off numbers, calling code repeated:
            # the branches of parse's national-prefix and calling-code steps
            code = example.country_code
            nsn = phonenumbers.national_significant_number(example)
            trunk = phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix or ""
            for text in (f"+{code} {trunk}{nsn}", f"{trunk}{nsn[:rng.randint(1, len(nsn))]}",
                         f"{code}{nsn}", f"{trunk}{code} {nsn}", f"+{code} {nsn[:4]}"):
                samples.append((text, rng.choice([region.lower(), None, "us"])))
    while len(samples) < count:
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 16)))
        roll = rng.random()
        if roll < 0.35:
            text = "+" + str(rng.choice(codes)) + digits
        elif roll < 0.45:
            text = "00" + str(rng.choice(codes)) + digits
        elif roll < 0.55:
            text = "+" + digits
        else:
            text = digits
        if rng.random() < 0.5:  # separators, and now and then something no shortcut takes
            noisy = []
            for ch in text:
                noisy.append(ch)
                if rng.random() < 0.2:
                    noisy.append(rng.choice(" - . ( ) / x # ; + \u00a0 \u0660 a".split(" ")))
            text = "".join(noisy)
        if rng.random() < 0.1:
            text = " " + text + rng.choice([" ", "-", ")", " ext 12", "x9"])
        samples.append((text, rng.choice(countries)))
    return samples


def test_phone_shortcuts_give_the_general_paths_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    table = json.loads((Path(__file__).resolve().parents[1] / "conformance" / "hashing.json")
                       .read_text(encoding="utf-8"))["rows"]
    samples = [(r["input"], r.get("country")) for r in table if r["key"] == "ph"]
    samples += [("+49 170 1234567", None), ("(650) 555-1234", "us"), ("020 7946 0018", "gb"),
                (16505551212, None), (6505551212.0, "us"), ("0612345678", "fr")]
    samples += _phone_samples(4000, seed=20261124)

    plans = phone._phone_plans()
    decided = []

    class Counting:
        def international(self, text: str) -> object:
            result = plans.international(text)
            decided.append(result is not phone._UNDECIDED)
            return result

        def national(self, text: str, region: str) -> object:
            result = plans.national(text, region)
            decided.append(result is not phone._UNDECIDED)
            return result

    monkeypatch.setattr(phone, "_phone_plans", Counting)
    quick = [normalize("ph", value, country=country) for value, country in samples]
    monkeypatch.setattr(phone, "_phone_plans", _NoShortcut)
    general = [normalize("ph", value, country=country) for value, country in samples]

    mismatches = [(s, q, g) for s, q, g in zip(samples, quick, general, strict=True) if q != g]
    assert mismatches == []
    assert sum(decided) > len(samples) // 3, "the shortcuts must decide a real share"
    assert any(q is None for q in quick) and sum(q is not None for q in quick) > 1000


def test_prepare_memo_takes_plain_strings_only() -> None:
    norm._prepare_cached.cache_clear()
    assert prepare("external_id", 1) == sha256_hex("1")
    assert prepare("external_id", 1.0) == sha256_hex("1")
    assert prepare("external_id", True) is None  # True == 1, but a flag is not an id
    assert prepare("em", ["a@b.co"]) is None  # unhashable values skip the memo, no TypeError
    assert prepare("em", {"a@b.co": 1}) is None
    assert prepare("ph", "+16505551212", country=["us"]) == sha256_hex("16505551212")

    class Text(str):
        pass

    assert prepare("em", Text(" A@B.co ")) == sha256_hex("a@b.co")
    assert norm._prepare_cached.cache_info().currsize == 0

    for _ in range(3):
        assert prepare("em", " A@B.co ") == sha256_hex("a@b.co")
        assert prepare("zp", "94025-1234", country="us") == sha256_hex("94025")
        assert prepare("zp", "94025-1234", country="de") == sha256_hex("940251234")
    info = norm._prepare_cached.cache_info()
    assert info.hits == 6 and info.currsize == 3
    assert info.maxsize == norm.PREPARE_CACHE_SIZE


def test_prepare_memo_results_match_fresh_calls() -> None:
    rows = [("em", " John_Smith@Gmail.com "), ("fn", "Mary-Ann"), ("ct", "St. Louis"),
            ("st", "Québec"), ("country", "Germany"), ("client_ip_address", "::ffff:1.2.3.4"),
            ("client_user_agent", " UA "), ("ph", "07911 123456"), ("db", "17.05.1990")]
    for key, value in rows:
        fresh = norm._prepare(key, value, "gb")
        assert prepare(key, value, country="gb") == fresh
        assert prepare(key, value, country="gb") == fresh  # now from the memo


def test_prepare_memo_is_bounded_and_forgets_the_oldest_values() -> None:
    """The memo is per instance and in memory only: it maps (key, raw text, country) to what
    goes on the wire (a SHA-256 hex for hashed keys; the IP, user agent or cookie text for the
    never-hashed ones). It is never logged or persisted, and it holds at most
    PREPARE_CACHE_SIZE entries: a raw value is dropped once that many others came after it."""
    norm._prepare_cached.cache_clear()
    size = norm.PREPARE_CACHE_SIZE
    first = "first.person@example.com"
    assert prepare("em", first) == sha256_hex(first)
    for i in range(size + 10):
        assert prepare("em", f"person{i}@example.com") == sha256_hex(f"person{i}@example.com")
    info = norm._prepare_cached.cache_info()
    assert info.currsize == size == info.maxsize and info.hits == 0
    assert prepare("em", first) == sha256_hex(first)  # prepared again, not remembered
    assert norm._prepare_cached.cache_info().hits == 0
    assert prepare("em", f"person{size + 9}@example.com")  # a recent one is remembered
    assert norm._prepare_cached.cache_info().hits == 1


def test_prepare_memo_serves_threads_the_same_answers() -> None:
    """functools.lru_cache keeps its own state consistent under threads (its lookups and
    updates run under the GIL or its lock); the answers are what a fresh call gives."""
    from concurrent.futures import ThreadPoolExecutor

    norm._prepare_cached.cache_clear()
    values = [(key, f" Value.{i % 300}@Example.com ") for i in range(3000)
              for key in ("em", "external_id")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda kv: prepare(kv[0], kv[1]), values))
    assert got == [norm._prepare(key, value, None) for key, value in values]
    assert norm._prepare_cached.cache_info().currsize <= norm.PREPARE_CACHE_SIZE


def test_ascii_stripping_matches_the_unicode_categories() -> None:
    ascii_chars = "".join(chr(code) for code in range(128))
    for text in (ascii_chars, "Mary-Ann O'Neil", "N.Y.", " 94025-1234\t", "a_b~c|d`e"):
        assert norm._strip_punctuation(text) == norm._strip_categories(text, ("P", "S", "Z", "Cc"))
        assert norm._compact_key(text) == "".join(
            ch for ch in unicodedata.normalize("NFKD", text.lower())
            if ch.isalpha() and not unicodedata.combining(ch))
        assert norm._city_text(text, None) == ("".join(
            ch for ch in text.lower() if unicodedata.category(ch)[0] in "LM") or None)
    assert norm._strip_punctuation("Ré-mi") == "Rémi"  # not ASCII: the category path


def test_canonical_ipv4_shortcut_agrees_with_ipaddress() -> None:
    import ipaddress
    import random

    octets = ["0", "00", "01", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255",
              "256", "300", "1000", "", "\u0663", "+1", "0x1", "-1"]
    rnd = random.Random(13)
    for _ in range(20_000):
        host = ".".join(rnd.choice(octets) for _ in range(rnd.choice((3, 4, 4, 5))))
        try:
            expected = str(ipaddress.ip_address(host))
        except ValueError:
            expected = None
        assert normalize_ip(host) == expected, host
        if norm._IPV4_RE.fullmatch(host):
            assert expected == host


def test_national_prefix_strip_plan_matches_the_library() -> None:
    """phone._PhonePlans strips a national prefix without calling phonenumbers' private
    helpers (regions without a transform rule): the same digits and the same keep-or-strip
    verdict as _maybe_strip_national_prefix_carrier_code + _test_number_length, for random
    digits with and without each region's trunk prefix and cut-off example numbers."""
    import random

    import phonenumbers

    plans = phone._phone_plans()
    rng = random.Random(20261201)
    fast = checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        plan = plans._strip_plan(region, metadata)
        if plan is None:
            continue
        fast += 1
        trunk = metadata.national_prefix or ""
        example = phonenumbers.example_number(region)
        nsn = phonenumbers.national_significant_number(example) if example else "123456789"
        for _ in range(40):
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 18)))
            roll = rng.random()
            if roll < 0.4:
                digits = trunk + digits
            elif roll < 0.7:
                digits = trunk + nsn[:rng.randint(1, len(nsn))]
            _, stripped, _ = plans.strip_prefix(digits, metadata)
            keep = plans.test_length(stripped, metadata) in plans.keep_stripped_unless
            assert plans._strip_national_prefix(digits, plan) == (stripped, keep), region
            checked += 1
    assert fast > 150 and checked > 6000
