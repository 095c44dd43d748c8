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


def cmd_preview(args: argparse.Namespace) -> int:
    from capi_relay.core.mapping import MappingConfig, RequestContext, to_capi_event
    from capi_relay.entrypoints.web import parse_events

    try:
        raw = _read_body(args.file)
    except (OSError, ValueError) as exc:
        print(f"capi-relay preview: cannot read input: {type(exc).__name__}", file=sys.stderr)
        return 2
    events, problem = parse_events(json.dumps(raw).encode())
    if problem:
        print(f"capi-relay preview: {problem}", file=sys.stderr)
        return 2
    now = float(args.now) if args.now is not None else time.time()
    config = MappingConfig.from_settings(default_country=args.country,
                                         default_currency=args.currency)
    # what the HTTP request would add where an event lacks it (a browser posting the event)
    request = RequestContext(ip=args.ip, user_agent=args.user_agent)
    data, rejected, explained = [], [], []
    for index, event in enumerate(events):
        mapped = to_capi_event(event, now=now, new_id=lambda: str(uuid.uuid4()), config=config,
                               request=request, explain=True)
        if args.explain:
            explained.append(_explanation(index, mapped))
        if mapped.event is not None:
            data.append(mapped.event.to_wire())
        else:
            # what was found all the same (names only), so a thin input is told from a refused one
            found = sorted(f.split(".", 1)[1] for f in mapped.explanation["fields"]
                           if f.startswith("user_data."))
            entry = {"index": index, "errors": list(mapped.reasons), "match_keys_found": found}
            if "draft" in mapped.explanation:  # the event once the errors are fixed
                entry["draft"] = mapped.explanation["draft"]
            rejected.append(entry)
            for reason in mapped.reasons:
                print(f"event {index}: {reason}", file=sys.stderr)
    out = {"data": data}
    if rejected:
        out["rejected"] = rejected
    if args.explain:
        out["explain"] = explained
    print(json.dumps(out, indent=2 if args.pretty else None, sort_keys=True))
    return 0


def _explanation(index: int, mapped: Any) -> dict[str, Any]:
    """Per event: each CAPI field with the input path it came from, the fields dropped and
    why, and input keys that look personal but were not used (names only, never values)."""
    from capi_relay.core.meta_rules import customer_information_problem

    out: dict[str, Any] = {"index": index, **{k: v for k, v in (mapped.explanation or {}).items()
                                               if k != "draft"}}
    if mapped.event is not None:
        problem = customer_information_problem(mapped.event.user_data)
        if problem:
            out["would_be_dead_lettered"] = problem
    return out


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

    preview = sub.add_parser("preview", help="print the CAPI events the relay would send")
    preview.add_argument("file", nargs="?", help="JSON body (default: stdin)")
    preview.add_argument("--now", type=float, help="the clock, as epoch seconds")
    preview.add_argument("--country", help="default country for phone numbers (alpha-2)")
    preview.add_argument("--pretty", action="store_true", help="indent the output")
    preview.add_argument("--currency", help="default currency (ISO 4217), as DEFAULT_CURRENCY")
    preview.add_argument("--user-agent", help="as if posted by this browser (request header)")
    preview.add_argument("--ip", help="as if posted from this address")
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
