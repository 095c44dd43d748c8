"""The ``capi-relay`` command: operator tools (preview, hash, replay, profiles import, doctor,
report)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any, Sequence

from capi_relay.core.model import HASHED_KEYS, NEVER_HASHED_KEYS


def _read_body(path: str | None) -> Any:
    text = sys.stdin.read() if path in (None, "-") else open(path, encoding="utf-8").read()
    return json.loads(text)


#: preview flags and the settings they stand for (the environment variable wins when unset)
PREVIEW_FLAGS = {"country": "DEFAULT_COUNTRY", "consent_policy": "CONSENT_POLICY",
                 "consent_missing": "CONSENT_MISSING", "ldu_regions": "LDU_REGIONS",
                 "redact": "REDACT_FIELDS", "field_aliases": "FIELD_ALIASES",
                 "event_names": "EVENT_NAME_MAP", "currency": "DEFAULT_CURRENCY"}


def cmd_preview(args: argparse.Namespace) -> int:
    from capi_relay.bootstrap import rules_from
    from capi_relay.core.errors import ConfigurationError
    from capi_relay.core.mapping import RequestContext
    from capi_relay.entrypoints.web import parse_events
    from capi_relay_ops.preview import enricher_for, preview, settings_for

    try:
        raw = _read_body(args.file)
    except (OSError, ValueError) as exc:
        print(f"capi-relay preview: cannot read input: {type(exc).__name__}", file=sys.stderr)
        return 2
    events, problem = parse_events(json.dumps(raw).encode())
    if problem:
        print(f"capi-relay preview: {problem}", file=sys.stderr)
        return 2
    try:
        settings = settings_for({env: getattr(args, flag) for flag, env in PREVIEW_FLAGS.items()})
        rules = rules_from(settings)
        enrich = enricher_for(args.profiles, settings)
    except ConfigurationError as exc:
        print(f"capi-relay preview: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) and str(exc).startswith("profiles") \
            else type(exc).__name__
        print(f"capi-relay preview: cannot read --profiles: {detail}", file=sys.stderr)
        return 2
    now = float(args.now) if args.now is not None else time.time()
    with _quiet_logs():  # the enricher logs as the processor does; preview prints, not logs
        # what the HTTP request would add where an event lacks it (a browser posting it)
        out = preview(events, now=now, rules=rules, enrich=enrich,
                      new_id=lambda: str(uuid.uuid4()),
                      request=RequestContext(ip=args.ip, user_agent=args.user_agent),
                      explain=args.explain,
                      # with PIXELS set: which pixels each event would go to
                      pixels=settings.delivery_pixels() if settings.pixels else None,
                      source=args.key_name)
    for row in out.get("rejected", ()):
        for reason in row["errors"]:
            print(f"event {row['index']}: {reason}", file=sys.stderr)
    for row in out.get("not_sent", ()):
        detail = f" ({row['detail']})" if row.get("detail") else ""
        print(f"event {row['index']}: not sent: {row['reason']}{detail}", file=sys.stderr)
    print(json.dumps(out, indent=2 if args.pretty else None, sort_keys=True))
    return 0


def _quiet_logs():
    import contextlib
    import io

    from capi_relay import log

    @contextlib.contextmanager
    def quiet():
        log.set_stream(io.StringIO())
        try:
            yield
        finally:
            log.set_stream(None)
    return quiet()


def cmd_hash(args: argparse.Namespace) -> int:
    from capi_relay.core.normalize import prepare

    if args.field not in HASHED_KEYS + NEVER_HASHED_KEYS:
        print(f"capi-relay hash: unknown user_data field {args.field!r}", file=sys.stderr)
        return 2
    for value in args.values:
        print(prepare(args.field, value, country=args.country) or "")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="capi-relay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    preview = sub.add_parser(
        "preview", help="print the CAPI events the relay would send, and why others would not",
        description="Runs every step the relay runs (mapping, consent, enrichment, regional "
        "rules, hash guard, Meta's rules) with the deployment's settings: environment "
        "variables, or the flags below, which override them.")
    preview.add_argument("file", nargs="?", help="JSON body (default: stdin)")
    preview.add_argument("--now", type=float, help="the clock, as epoch seconds")
    preview.add_argument("--country", help="default country for phone numbers (alpha-2); "
                         "DEFAULT_COUNTRY")
    preview.add_argument("--consent-policy", choices=("strict", "strip_user_data"),
                         help="CONSENT_POLICY: drop events whose consent is denied, or send "
                         "them without user data")
    preview.add_argument("--consent-missing", choices=("send", "drop"),
                         help="CONSENT_MISSING: what to do with events that carry no consent")
    preview.add_argument("--ldu-regions", help="LDU_REGIONS, e.g. us-ca,us-co")
    preview.add_argument("--redact", help="REDACT_FIELDS, JSON, e.g. "
                         "'{\"eu\": [\"client_ip_address\"]}'")
    preview.add_argument("--field-aliases", help="FIELD_ALIASES, JSON")
    preview.add_argument("--event-names", help="EVENT_NAME_MAP, JSON")
    preview.add_argument("--profiles", metavar="FILE",
                         help="simulate enrichment from a JSON file of profile documents "
                         "(document id -> document, or a list of profiles)")
    preview.add_argument("--pretty", action="store_true", help="indent the output")
    preview.add_argument("--currency", help="default currency (ISO 4217), as DEFAULT_CURRENCY")
    preview.add_argument("--user-agent", help="as if posted by this browser (request header)")
    preview.add_argument("--ip", help="as if posted from this address")
    preview.add_argument("--key-name", metavar="NAME",
                         help="as if posted with the ingest key named NAME (name@key), for "
                              "PIXELS routes by source_keys")
    preview.add_argument("--explain", action="store_true",
                         help="say per event where each field came from, what was dropped "
                              "and why, and which personal-looking keys were not used")
    preview.set_defaults(run=cmd_preview)

    hash_ = sub.add_parser("hash", help="print what would be sent for a user_data field")
    hash_.add_argument("--country",
                       help="the person's country (alpha-2), for phone numbers and zip codes")
    hash_.add_argument("field", help="user_data key, e.g. em, ph, fn, client_ip_address")
    hash_.add_argument("values", nargs="+")
    hash_.set_defaults(run=cmd_hash)

    from capi_relay_ops.replay import register as register_replay

    register_replay(sub)
    from capi_relay_ops.profiles_import import register as register_profiles

    register_profiles(sub)
    from capi_relay_ops.doctor import register as register_doctor

    register_doctor(sub)
    from capi_relay_ops.report import register as register_report

    register_report(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
