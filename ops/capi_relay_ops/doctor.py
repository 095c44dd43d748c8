"""``capi-relay doctor``: checks a deployment's settings, its Meta token and its API version.

Reads the settings the functions read (the environment, ``--env-file``, or a deployed
function's own with ``--function``), through
``Settings.from_env``; reads the token the way the processor does (META_ACCESS_TOKEN, else the
Secret Manager version META_TOKEN_SECRET names); sends one test event with a test event code,
so the check shows under Events Manager's "Test events" and counts as no real event; and warns
when META_API_VERSION nears or passes its published expiry (graph_versions.py). With
``PIXELS``, each further pixel's token is checked the same way, with that pixel's own test event
code (its PIXELS entry's, or ``--pixel-test-event-code PIXEL=CODE``).

Never prints a token or any secret value: problems name the setting. Exit 0: nothing failed
(warnings allowed); 1: at least one check failed.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Callable, Mapping, TextIO

from capi_relay_ops.graph_versions import version_status

#: the stand-in's and Meta's answer for an expired session (code 190, subcode 463)
_EXPIRED_SUBCODES = {463}


@dataclass(frozen=True)
class Finding:
    level: str  # ok | warn | fail
    check: str
    text: str


def read_env_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines (``export`` and quotes allowed, # comments); what a .env file holds."""
    env: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            line = line.removeprefix("export ").strip()
            key, sep, value = line.partition("=")
            if not sep or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key.strip()):
                raise ValueError(f"{path}:{number}: not a KEY=VALUE line")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key.strip()] = value
    return env


def function_env(name: str, region: str | None, project: str | None,
                 run=None) -> dict[str, str]:
    """The environment variables of a deployed gen2 function, from ``gcloud functions
    describe`` (the operator's own gcloud login; nothing is stored)."""
    import json
    import subprocess

    argv = ["gcloud", "functions", "describe", name, "--gen2", "--format=json"]
    if region:
        argv.append(f"--region={region}")
    if project:
        argv.append(f"--project={project}")
    run = run or subprocess.run
    try:
        result = run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ValueError(f"gcloud could not run: {type(exc).__name__}") from None
    if result.returncode != 0:
        raise ValueError(f"gcloud functions describe {name} failed: "
                         f"{result.stderr.strip()[-300:]}")
    try:
        described = json.loads(result.stdout)
        env = described["serviceConfig"].get("environmentVariables") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"gcloud functions describe {name}: no serviceConfig in its "
                         "answer") from None
    return {str(k): str(v) for k, v in env.items()}


def check_settings(env: Mapping[str, str]):
    """(settings or None, findings): Settings.from_env's verdict plus checks of its values."""
    from capi_relay.config import Settings
    from capi_relay.core.errors import ConfigurationError

    findings: list[Finding] = []
    try:
        settings = Settings.from_env(env, need=("token",))
    except ConfigurationError as exc:  # names the variable, never its value
        return None, [Finding("fail", "settings", str(exc))]
    findings.append(Finding("ok", "settings", f"read for pixel {settings.pixel_id}, project "
                                              f"{settings.project}"))
    if not re.fullmatch(r"[0-9]{5,20}", settings.pixel_id):
        findings.append(Finding("fail", "settings", "META_PIXEL_ID: must be the numeric "
                                                    "pixel (dataset) ID"))
    if not re.fullmatch(r"v[0-9]+\.[0-9]+", settings.api_version):
        findings.append(Finding("fail", "settings", "META_API_VERSION: must look like v27.0"))
    if not settings.graph_url.startswith("https://") and not re.match(
            r"http://(127\.0\.0\.1|localhost|\[::1\])(:|/|$)", settings.graph_url):
        findings.append(Finding("fail", "settings", "META_GRAPH_URL: must be https:// "
                                                    "(plain http only to a local stand-in)"))
    for origin in settings.allowed_origins:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            findings.append(Finding("fail", "settings", "ALLOWED_ORIGINS: every entry must be "
                                                        "an origin such as https://shop.example"))
            break
    if settings.default_country and not re.fullmatch(r"[A-Za-z]{2}", settings.default_country):
        findings.append(Finding("fail", "settings", "DEFAULT_COUNTRY: must be an ISO 3166-1 "
                                                    "alpha-2 code"))
    if not settings.dead_letter_topic:
        findings.append(Finding("warn", "settings", "DEAD_LETTER_TOPIC: not set; rejected "
                                                    "events are recorded as failed only"))
    if settings.access_token and settings.token_secret:
        findings.append(Finding("warn", "settings", "META_ACCESS_TOKEN and META_TOKEN_SECRET "
                                                    "both set: the processor uses "
                                                    "META_ACCESS_TOKEN"))
    if settings.test_event_code:
        findings.append(Finding("warn", "settings", "META_TEST_EVENT_CODE is set: every event "
                                                    "goes to Test events only, none counts"))
    return settings, findings


def doctor_event(now: float) -> dict:
    """The test event: no personal data (its external_id is the hash of a fixed text)."""
    return {
        "event_name": "CapiRelayDoctor",
        "event_time": int(now),
        "event_id": f"capi-relay-doctor-{uuid.uuid4()}",
        "action_source": "system_generated",
        "user_data": {"external_id": [hashlib.sha256(b"capi-relay-doctor").hexdigest()]},
    }


def check_token(settings, test_event_code: str | None, *, now: float,
                token_source: Callable | None = None, client=None) -> list[Finding]:
    from capi_relay import bootstrap

    code = test_event_code or settings.test_event_code
    if not code:
        return [Finding("warn", "token", "not checked: pass --test-event-code (Events Manager "
                                          "> Test events) so the check event is not counted")]
    main = next(p for p in settings.delivery_pixels() if p.id == settings.pixel_id)
    source = token_source or (lambda s: bootstrap.pixel_token_source(s, main)
                              or bootstrap.token_source(s))
    return _check_pixel_token(settings, settings.pixel_id, code, source, now=now, client=client)


def check_pixel_tokens(settings, codes: Mapping[str, str], *, now: float,
                       clients: Mapping[str, object] | None = None) -> list[Finding]:
    """Each pixel of PIXELS besides META_PIXEL_ID's: its token, with its own test event code
    (``codes``, else its PIXELS entry's); without one, a warning and no call."""
    from capi_relay import bootstrap

    findings = []
    for pixel in settings.delivery_pixels():
        if pixel.id == settings.pixel_id:
            continue
        code = codes.get(pixel.id) or pixel.test_event_code
        if not code:
            findings.append(Finding("warn", "token", f"pixel {pixel.id}: not checked: pass "
                                    f"--pixel-test-event-code {pixel.id}=CODE"))
            continue

        def source(s, pixel=pixel):
            return bootstrap.pixel_token_source(s, pixel) or bootstrap.token_source(s)
        findings.extend(_check_pixel_token(settings, pixel.id, code, source, now=now,
                                           client=(clients or {}).get(pixel.id)))
    return findings


def _check_pixel_token(settings, pixel_id: str, code: str, source: Callable, *, now: float,
                       client=None) -> list[Finding]:
    from capi_relay.adapters.graph import GraphCapiClient
    from capi_relay.core.errors import RelayError
    from capi_relay.core.graph_outcome import Verdict

    which = "" if pixel_id == settings.pixel_id else f"pixel {pixel_id}: "
    try:
        token = source(settings).get()
    except RelayError as exc:  # names the secret version, never its value
        return [Finding("fail", "token", f"{which}could not read the token: {exc}")]
    own_client = client is None
    client = client or GraphCapiClient(settings.graph_url, settings.api_version,
                                       pixel_id, timeout=settings.graph_timeout)
    try:
        outcome = client.send([doctor_event(now)], token, test_event_code=code)
    finally:
        if own_client:
            client.close()
    detail = f"code {outcome.code}, subcode {outcome.subcode}: {outcome.message}"
    if outcome.verdict is Verdict.OK:
        return [Finding("ok", "token", f"Meta accepted a test event for pixel "
                                       f"{pixel_id} (events_received="
                                       f"{outcome.events_received}, fbtrace_id "
                                       f"{outcome.fbtrace_id})")]
    if outcome.verdict is Verdict.TOKEN:
        what = "expired" if outcome.subcode in _EXPIRED_SUBCODES else "rejected"
        return [Finding("fail", "token", f"{which}Meta {what} the token ({detail}); put a "
                                         "new system-user token in the secret")]
    return [Finding("fail", "token", f"{which}the test event failed: "
                                     f"{outcome.verdict.value} ({detail})")]


def run(env: Mapping[str, str], *, today: date, now: float, test_event_code: str | None,
        skip_token: bool = False, out: TextIO = sys.stdout,
        pixel_codes: Mapping[str, str] | None = None, **token_options) -> int:
    settings, findings = check_settings(env)
    if settings is not None:
        status = version_status(settings.api_version, today)
        findings.append(Finding(status.level, "api version", status.text))
        if skip_token:
            findings.append(Finding("warn", "token", "not checked (--skip-token)"))
        elif not any(f.level == "fail" for f in findings if f.check == "settings"):
            findings.extend(check_token(settings, test_event_code, now=now, **token_options))
            findings.extend(check_pixel_tokens(settings, pixel_codes or {}, now=now))
    for finding in findings:
        print(f"{finding.level.upper():4}  {finding.check}: {finding.text}", file=out)
    failed = sum(f.level == "fail" for f in findings)
    warned = sum(f.level == "warn" for f in findings)
    print(f"doctor: {failed} problem(s), {warned} warning(s)", file=out)
    return 1 if failed else 0


def _today(text: str | None) -> date:
    if text is None:
        return datetime.now(timezone.utc).date()
    return date.fromisoformat(text)


def cmd_doctor(args: argparse.Namespace) -> int:
    import os

    try:
        if args.function:
            env = function_env(args.function, args.region, args.project)
        else:
            env = read_env_file(args.env_file) if args.env_file else dict(os.environ)
        today = _today(args.today)
    except (OSError, ValueError) as exc:
        print(f"capi-relay doctor: {exc}", file=sys.stderr)
        return 1
    codes = {}
    for entry in args.pixel_test_event_code or ():
        pixel, _, code = entry.partition("=")
        if not (pixel.strip() and code.strip()):
            print("capi-relay doctor: --pixel-test-event-code: use PIXEL=CODE", file=sys.stderr)
            return 1
        codes[pixel.strip()] = code.strip()
    return run(env, today=today, now=time.time(), test_event_code=args.test_event_code,
               skip_token=args.skip_token, pixel_codes=codes)


def register(sub) -> None:
    parser = sub.add_parser("doctor", help="check a deployment's settings, token and API version")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--env-file", help="read the settings from this KEY=VALUE file "
                                           "(default: the environment)")
    source.add_argument("--function", help="read the settings of this deployed function, e.g. "
                                           "capi-relay-process (gcloud functions describe)")
    parser.add_argument("--region", help="the function's region (with --function)")
    parser.add_argument("--project", help="the function's project (with --function)")
    parser.add_argument("--test-event-code", help="Events Manager test event code for the token "
                                                  "check (default: META_TEST_EVENT_CODE)")
    parser.add_argument("--pixel-test-event-code", action="append", metavar="PIXEL=CODE",
                        help="test event code for the token check of a pixel of PIXELS "
                             "(repeatable; default: its PIXELS entry's)")
    parser.add_argument("--skip-token", action="store_true", help="do not call Meta")
    parser.add_argument("--today", help="the date to check the API version against "
                                        "(YYYY-MM-DD; default: today, UTC)")
    parser.set_defaults(run=cmd_doctor)
