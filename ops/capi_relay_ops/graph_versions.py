"""Meta's published Marketing API versions, with release and expiry dates, for ``doctor``.

Source: Meta's "Marketing API version history" (developers.facebook.com/documentation/
ads-commerce/marketing-api/marketing-api-changelog/versions), read 2026-12-01. The Conversions
API is part of the Marketing API, so its dates apply to the relay's META_API_VERSION. The Graph
API's own table (developers.facebook.com/docs/graph-api/changelog/versions) gives the same
release dates but, since v21.0, later expiry dates (v25.0: 2028-07-29 there, 2027-02-23 here);
doctor warns on the earlier, Marketing API date.

``None`` is Meta's "TBD": no expiry announced yet. A version is usable until its expiry date;
Meta's versioning page promises at least 90 days between a successor's release and expiry.
Update this table when Meta publishes a version (and ``DEFAULT_API_VERSION`` in config.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

#: when this table was last compared with Meta's page
CHECKED_ON = date(2026, 12, 1)
SOURCE_URL = ("https://developers.facebook.com/documentation/ads-commerce/marketing-api/"
              "marketing-api-changelog/versions")

#: version -> (released, expires); expires None: not announced ("TBD")
MARKETING_API_VERSIONS: dict[str, tuple[date, date | None]] = {
    "v27.0": (date(2026, 11, 4), None),
    "v26.0": (date(2026, 7, 29), None),
    "v25.0": (date(2026, 2, 18), date(2027, 2, 23)),
    "v24.0": (date(2025, 10, 8), date(2026, 11, 10)),  # was 2026-10-06, extended by Meta
    "v23.0": (date(2025, 5, 29), date(2026, 6, 9)),
    "v22.0": (date(2025, 1, 21), date(2026, 2, 19)),
    "v21.0": (date(2024, 10, 2), date(2025, 9, 9)),
    "v20.0": (date(2024, 5, 21), date(2025, 5, 6)),
    "v19.0": (date(2024, 1, 23), date(2025, 2, 4)),
    "v18.0": (date(2023, 9, 12), date(2024, 8, 13)),
    "v17.0": (date(2023, 5, 23), date(2024, 5, 14)),
    "v16.0": (date(2023, 2, 2), date(2024, 2, 6)),
}

#: warn this many days before a version's expiry
WARN_DAYS = 90


@dataclass(frozen=True)
class VersionStatus:
    """What doctor says about a version on a given day."""

    level: str  # "ok" | "warn" | "fail"
    text: str


def _newest() -> str:
    return max(MARKETING_API_VERSIONS, key=lambda v: MARKETING_API_VERSIONS[v][0])


def version_status(version: str, today: date) -> VersionStatus:
    newest = _newest()
    dates = MARKETING_API_VERSIONS.get(version)
    if dates is None:
        oldest = min(MARKETING_API_VERSIONS, key=lambda v: MARKETING_API_VERSIONS[v][0])
        if _as_tuple(version) < _as_tuple(oldest):
            return VersionStatus("fail", f"{version} is older than {oldest}, whose support "
                                 f"ended long ago; use {newest}")
        return VersionStatus("warn", f"{version} is not in doctor's table (checked "
                             f"{CHECKED_ON.isoformat()}); check its expiry at {SOURCE_URL}")
    released, expires = dates
    if released > today:
        return VersionStatus("warn", f"{version} is released only on {released.isoformat()}")
    if expires is None:
        return VersionStatus("ok", f"{version} (released {released.isoformat()}): "
                             "no expiry announced yet")
    left = (expires - today).days
    if left <= 0:
        return VersionStatus("fail", f"{version} expired on {expires.isoformat()}: Meta may "
                             f"reject or upgrade its calls; set META_API_VERSION to {newest}")
    if left <= WARN_DAYS:
        return VersionStatus("warn", f"{version} expires on {expires.isoformat()}, in {left} "
                             f"day(s); move META_API_VERSION to {newest}")
    return VersionStatus("ok", f"{version} expires on {expires.isoformat()}, in {left} days")


def _as_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.lstrip("v").split("."))
    except ValueError:
        return (0,)
