"""Regional rules: Limited Data Use by country/state, and per-country redaction of fields. Pure.

The processor only ever sees country and state as SHA-256 hashes (ingest hashed them), so the
rules are matched on hashes: each configured region is normalized exactly as ingest normalizes
an event's country/state (``normalize.normalize``) and hashed once, when the rules are built;
an event matches when one of its hashed values equals one of those. The processor keeps no raw
data, and ingest stays a mapper.

- ``LDU_REGIONS`` ("us-ca,us-co", or "us" for a whole country): a matching event gets
  ``data_processing_options=["LDU"]`` with country 0 and state 0, Meta's geolocation mode.
  An event that already carries "LDU" keeps its own options and codes (pass-through). A state
  rule also matches an event with that state and no country at all: when in doubt, restrict.
- ``REDACT_FIELDS`` ({"de": ["client_ip_address"], "eu": [...]}): user_data fields removed
  from events whose country matches; "eu" is the 27 EU member states, "eea" adds Iceland,
  Liechtenstein and Norway. An event without a country is not redacted.
Meta: https://developers.facebook.com/docs/marketing-apis/data-processing-options
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Iterable, Mapping

from capi_relay.core.errors import ConfigurationError
from capi_relay.core.model import CapiEvent, UserData
from capi_relay.core.normalize import normalize, sha256_hex
from capi_relay.core.regions import ISO_ALPHA2

EU_MEMBER_STATES: tuple[str, ...] = (
    "at", "be", "bg", "cy", "cz", "de", "dk", "ee", "es", "fi", "fr", "gr", "hr", "hu", "ie",
    "it", "lt", "lu", "lv", "mt", "nl", "pl", "pt", "ro", "se", "si", "sk",
)
COUNTRY_GROUPS: Mapping[str, tuple[str, ...]] = {
    "eu": EU_MEMBER_STATES,
    "eea": EU_MEMBER_STATES + ("is", "li", "no"),
}
#: what REDACT_FIELDS may name: any user_data field
REDACTABLE: frozenset[str] = frozenset(f.name for f in fields(UserData))


def _base(value: str) -> str:
    return value.split(".", 1)[0].lower()  # a Parameter Builder value carries an appendix


@dataclass(frozen=True)
class LduRegion:
    country: str           # sha256 of the alpha-2 code
    state: str | None = None  # sha256 of the normalized state, None for the whole country

    def matches(self, countries: frozenset[str], states: frozenset[str]) -> bool:
        if self.state is None:
            return self.country in countries
        return self.state in states and (self.country in countries or not countries)


@dataclass(frozen=True)
class RegionalDecision:
    """What the rules say about one event; names only."""

    ldu: bool = False
    redact: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegionalRules:
    ldu: tuple[LduRegion, ...] = ()
    redact: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # country hash -> fields

    @property
    def empty(self) -> bool:
        return not self.ldu and not self.redact

    @classmethod
    def from_settings(cls, ldu_regions: Iterable[str] = (),
                      redact: Mapping[str, Iterable[str]] | None = None) -> "RegionalRules":
        """Builds the rules from LDU_REGIONS and REDACT_FIELDS; bad entries raise, named."""
        regions = []
        for entry in ldu_regions:
            text = entry.strip().lower()
            country, _, state = text.partition("-")
            if country not in ISO_ALPHA2:
                raise ConfigurationError(f"LDU_REGIONS: {entry!r} does not start with an "
                                         "ISO 3166-1 alpha-2 country code")
            state_hash = None
            if state:
                normalized = normalize("st", state, country=country)
                if normalized is None:
                    raise ConfigurationError(f"LDU_REGIONS: {entry!r} names no state of "
                                             f"{country!r}")
                state_hash = sha256_hex(normalized)
            regions.append(LduRegion(sha256_hex(country), state_hash))
        by_country: dict[str, list[str]] = {}
        for where, names in (redact or {}).items():
            code = str(where).strip().lower()
            countries = COUNTRY_GROUPS.get(code) or ((code,) if code in ISO_ALPHA2 else None)
            if countries is None:
                raise ConfigurationError(f"REDACT_FIELDS: {where!r} is not a country code, "
                                         "'eu' or 'eea'")
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise ConfigurationError(f"REDACT_FIELDS: {where!r} must map to a list of "
                                         "user_data field names")
            unknown = sorted(set(names) - REDACTABLE)
            if unknown:
                raise ConfigurationError(f"REDACT_FIELDS: unknown user_data field(s) for "
                                         f"{where!r}: {', '.join(unknown)}")
            for country in countries:
                listed = by_country.setdefault(sha256_hex(country), [])
                listed.extend(n for n in names if n not in listed)
        return cls(tuple(dict.fromkeys(regions)),
                   {k: tuple(v) for k, v in by_country.items() if v})

    def decide(self, event: CapiEvent) -> RegionalDecision:
        countries = frozenset(_base(v) for v in event.user_data.country)
        states = frozenset(_base(v) for v in event.user_data.st)
        ldu = any(region.matches(countries, states) for region in self.ldu)
        redact: list[str] = []
        for country in countries:
            redact.extend(n for n in self.redact.get(country, ()) if n not in redact)
        present = set(event.user_data.present_keys())
        return RegionalDecision(ldu, tuple(n for n in redact if n in present))


def apply(event: CapiEvent, decision: RegionalDecision) -> CapiEvent:
    """The event with the decision applied: LDU options set, redacted fields removed."""
    if decision.ldu and "LDU" not in (event.data_processing_options or ()):
        event = replace(event, data_processing_options=("LDU",),
                        data_processing_options_country=0, data_processing_options_state=0)
    if decision.redact:
        event = replace(event, user_data=event.user_data.without(decision.redact))
    return event
