"""Which pixels an event goes to: each pixel's route over event name, page host and source key.

``META_PIXEL_ID`` is a pixel that takes every event; ``PIXELS`` (JSON, a list) adds pixels, and
by listing META_PIXEL_ID's id gives that one a route too (``with_main``). A route lists any of::

    event_names   Meta event names, after mapping (``Purchase``); exact, case-sensitive
    hosts         the page's host (``event_source_url``): ``shop.example.com`` exactly, or
                  ``*.example.com`` for its subdomains (not ``example.com`` itself)
    source_keys   names of ingest keys (``name@key`` in INGEST_KEYS / the keys secret)

An event goes to every pixel whose route it matches: each listed criterion must hold (an absent
or empty list holds for any event); within a list, any entry. An event with no page URL never
matches a route with ``hosts``; one from a keyless or unnamed source never matches a route with
``source_keys``. An event that matches no pixel is not sent (the processor logs it, counted).

Pure: plain values in, pixel ids out. Parsing errors name the entry and field, never a token.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import urlsplit

from capi_relay.core.errors import ConfigurationError

#: a source key's name (``name@key``): a label safe to log and to carry on the queue
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
#: Graph's path segment ``/{version}/{pixel_id}/events``: a dataset id is digits
PIXEL_ID = re.compile(r"[0-9]{1,20}")
_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_LABEL = r"(?!-)[a-z0-9_\-]{1,63}(?<!-)"
_HOST = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_PIXEL_KEYS = frozenset({"id", "token_secret", "token_env", "test_event_code", "route"})
_ROUTE_KEYS = ("event_names", "hosts", "source_keys")


@dataclass(frozen=True)
class Route:
    """The events one pixel takes; an empty criterion holds for any event."""

    event_names: frozenset[str] = frozenset()
    hosts: tuple[str, ...] = ()          # lowercased; "*.example.com" for subdomains
    source_keys: frozenset[str] = frozenset()

    @property
    def takes_all(self) -> bool:
        return not (self.event_names or self.hosts or self.source_keys)

    def matches(self, event_name: str, host: str | None, source: str | None) -> bool:
        if self.event_names and event_name not in self.event_names:
            return False
        if self.hosts and not (host and any(_host_matches(p, host) for p in self.hosts)):
            return False
        return not self.source_keys or (source is not None and source in self.source_keys)


EVERY_EVENT = Route()


@dataclass(frozen=True)
class Pixel:
    """One dataset the relay sends to: its id, route, and where its token and test code come
    from. ``token_secret`` / ``token_env`` None: the deployment's META_TOKEN_SECRET /
    META_ACCESS_TOKEN."""

    id: str
    route: Route = EVERY_EVENT
    test_event_code: str | None = None
    token_secret: str | None = None   # a Secret Manager version resource name
    token_env: str | None = None      # local runs: the environment variable holding the token


def page_host(url: str | None) -> str | None:
    """The lowercased host of a page URL, without port or trailing dot; None if it has none."""
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.rstrip(".")
    if not host.isascii():  # an internationalized name: compared as punycode, like the routes
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return host or None


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def pixels_for(pixels: Iterable[Pixel], *, event_name: str, url: str | None,
               source: str | None) -> tuple[Pixel, ...]:
    """The pixels one event goes to, in configuration order (none: it is not sent)."""
    host = page_host(url)
    return tuple(p for p in pixels if p.route.matches(event_name, host, source))


# -- parsing PIXELS ---------------------------------------------------------------------------

def parse_pixels(text: str | None, *, source: str = "PIXELS") -> tuple[Pixel, ...]:
    """The pixels of a PIXELS value (empty when unset). Errors name ``source[i].field``."""
    if not text or not text.strip():
        return ()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{source}: not valid JSON ({exc.msg})") from None
    if not isinstance(value, list) or not value:
        raise ConfigurationError(f"{source}: must be a non-empty JSON list of pixels")
    out: list[Pixel] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(value):
        where = f"{source}[{index}]"
        pixel = _pixel(entry, where)
        if pixel.id in seen:
            raise ConfigurationError(
                f"{where}.id: the same pixel as {source}[{seen[pixel.id]}]; give it one route")
        seen[pixel.id] = index
        out.append(pixel)
    return tuple(out)


def _pixel(entry: Any, where: str) -> Pixel:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where}: must be an object with an id")
    unknown = sorted(set(entry) - _PIXEL_KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown field(s) {', '.join(unknown)}; expected "
                                 f"{', '.join(sorted(_PIXEL_KEYS))}")
    pixel_id = entry.get("id")
    if isinstance(pixel_id, int) and not isinstance(pixel_id, bool):
        pixel_id = str(pixel_id)
    if not isinstance(pixel_id, str) or not PIXEL_ID.fullmatch(pixel_id.strip()):
        raise ConfigurationError(f"{where}.id: must be the numeric pixel (dataset) id")
    secret = _text(entry, "token_secret", where)
    if secret is not None and not secret.startswith("projects/"):
        raise ConfigurationError(f"{where}.token_secret: must be a secret version resource "
                                 "name (projects/P/secrets/S/versions/V)")
    token_env = _text(entry, "token_env", where)
    if token_env is not None and not _ENV_NAME.fullmatch(token_env):
        raise ConfigurationError(f"{where}.token_env: must be an environment variable name")
    if secret and token_env:
        raise ConfigurationError(f"{where}: token_secret or token_env, not both")
    return Pixel(pixel_id.strip(), _route(entry.get("route"), f"{where}.route"),
                 _text(entry, "test_event_code", where), secret, token_env)


def _text(entry: dict, name: str, where: str) -> str | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{where}.{name}: must be a string")
    return value.strip() or None


def _route(value: Any, where: str) -> Route:
    if value is None:
        return EVERY_EVENT
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where}: must be an object with "
                                 f"{', '.join(_ROUTE_KEYS)}")
    unknown = sorted(set(value) - set(_ROUTE_KEYS))
    if unknown:
        raise ConfigurationError(f"{where}: unknown field(s) {', '.join(unknown)}; expected "
                                 f"{', '.join(_ROUTE_KEYS)}")
    lists = {}
    for name in _ROUTE_KEYS:
        items = value.get(name) or []
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ConfigurationError(f"{where}.{name}: must be a list of strings")
        lists[name] = [i.strip() for i in items if i.strip()]
    for index, name in enumerate(lists["event_names"]):
        if not _EVENT_NAME.fullmatch(name):
            raise ConfigurationError(f"{where}.event_names[{index}]: not a Meta event name")
    hosts = []
    for index, host in enumerate(lists["hosts"]):
        normal = _normal_host(host)
        if normal is None:
            raise ConfigurationError(f"{where}.hosts[{index}]: must be a host name like "
                                     "shop.example.com or *.example.com (no scheme, no path)")
        hosts.append(normal)
    for index, name in enumerate(lists["source_keys"]):
        if not KEY_NAME.fullmatch(name):
            raise ConfigurationError(f"{where}.source_keys[{index}]: must be a key's name "
                                     "(letters, digits, -._), not the key")
    return Route(frozenset(lists["event_names"]), tuple(hosts), frozenset(lists["source_keys"]))


def _normal_host(host: str) -> str | None:
    host = host.lower().rstrip(".")
    wildcard = host.startswith("*.")
    bare = host[2:] if wildcard else host
    if not bare.isascii():  # an internationalized name, as browsers send it: punycode
        try:
            bare = bare.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    host = ("*." if wildcard else "") + bare
    return host if _HOST.fullmatch(host) else None


def describe(pixel: Pixel) -> str:
    """A pixel and its route in one line for people (names only; never a token)."""
    route = pixel.route
    parts = [f"{name}={','.join(sorted(values))}" for name, values in (
        ("events", route.event_names), ("hosts", route.hosts), ("keys", route.source_keys))
        if values]
    return f"{pixel.id} ({'; '.join(parts) if parts else 'every event'})"



def with_main(main: Pixel, listed: tuple[Pixel, ...]) -> tuple[Pixel, ...]:
    """The pixels events go to: META_PIXEL_ID's pixel (``main``) and those of PIXELS.

    The main pixel takes every event unless PIXELS lists its id, which gives it a route (and,
    where given, its own token or test code; otherwise it keeps META_TEST_EVENT_CODE's).
    """
    own = next((p for p in listed if p.id == main.id), None)
    if own is None:
        return (main, *listed)
    merged = Pixel(main.id, own.route, own.test_event_code or main.test_event_code,
                   own.token_secret, own.token_env)
    return tuple(merged if p.id == main.id else p for p in listed)
