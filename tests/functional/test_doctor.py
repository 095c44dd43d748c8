"""capi-relay doctor against the Graph stand-in: settings, token (good, wrong, expired), version."""

from __future__ import annotations

import io
import time
from datetime import date

import pytest

from capi_relay_dev.graph_standin import GraphStandin
from capi_relay_ops import doctor
from capi_relay_ops.cli import main
from capi_relay_ops.graph_versions import MARKETING_API_VERSIONS, version_status

TOKEN = "EAAdoctorgoodtoken0123456789abcdef"
PIXEL = "1234567890"
TODAY = date(2026, 12, 1)


@pytest.fixture
def standin():
    with GraphStandin("127.0.0.1", 0, expected_token=TOKEN, log=io.StringIO()) as server:
        yield server


def env_for(standin, **changes) -> dict[str, str]:
    env = {"GOOGLE_CLOUD_PROJECT": "demo-project", "PUBSUB_TOPIC": "capi-events",
           "DEAD_LETTER_TOPIC": "capi-events-dead-letter", "META_PIXEL_ID": PIXEL,
           "META_API_VERSION": "v27.0", "META_GRAPH_URL": standin.url,
           "META_ACCESS_TOKEN": TOKEN}
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def run(env, **options) -> tuple[int, str]:
    out = io.StringIO()
    options.setdefault("test_event_code", "TEST123")
    code = doctor.run(env, today=options.pop("today", TODAY),
                      now=options.pop("now", time.time()), out=out, **options)
    return code, out.getvalue()


def test_good_token_sends_one_test_event(standin):
    code, text = run(env_for(standin), now=standin.clock())
    assert code == 0, text
    assert "OK    token: Meta accepted a test event" in text
    (event,) = standin.accepted
    assert event["test_event_code"] == "TEST123"  # never counted as a real event
    assert event["event_name"] == "CapiRelayDoctor"
    assert TOKEN not in text


def test_wrong_token_is_a_problem_and_never_printed(standin):
    wrong = "EAAwrongtoken9876543210"
    code, text = run(env_for(standin, META_ACCESS_TOKEN=wrong), now=standin.clock())
    assert code == 1
    assert "FAIL  token: Meta rejected the token (code 190" in text
    assert wrong not in text and TOKEN not in text
    assert standin.accepted == []


def test_expired_token(standin):
    standin.set_faults(expired_token_first_n=1)
    code, text = run(env_for(standin), now=standin.clock())
    assert code == 1
    assert "FAIL  token: Meta expired the token (code 190, subcode 463" in text


def test_token_from_the_secret_is_read_like_the_processor_reads_it(standin):
    read = []

    class Source:
        def __init__(self, settings):
            read.append(settings.token_secret)

        def get(self, *, refresh=False):
            return TOKEN

    env = env_for(standin, META_ACCESS_TOKEN=None,
                  META_TOKEN_SECRET="projects/p/secrets/meta-token/versions/latest")
    code, text = run(env, now=standin.clock(), token_source=Source)
    assert code == 0, text
    assert read == ["projects/p/secrets/meta-token/versions/latest"]


def test_the_processors_token_source_is_the_one_doctor_uses():
    from capi_relay import bootstrap
    from capi_relay.adapters.secrets import SecretManagerSource, StaticSecret
    from capi_relay.config import Settings

    base = {"GOOGLE_CLOUD_PROJECT": "p", "PUBSUB_TOPIC": "t", "META_PIXEL_ID": PIXEL}
    secret = Settings.from_env({**base, "META_TOKEN_SECRET": "projects/p/secrets/s/versions/1"})
    assert isinstance(bootstrap.token_source(secret), SecretManagerSource)
    static = Settings.from_env({**base, "META_ACCESS_TOKEN": "abc"})
    assert isinstance(bootstrap.token_source(static), StaticSecret)


def test_missing_settings_are_named_and_no_call_is_made(standin):
    code, text = run(env_for(standin, META_PIXEL_ID=None, META_ACCESS_TOKEN=None))
    assert code == 1
    assert "META_PIXEL_ID" in text and "META_TOKEN_SECRET" in text
    assert standin.requests == 0


def test_bad_values_are_named_not_echoed(standin):
    code, text = run(env_for(standin, META_PIXEL_ID="pixel-one",
                             ALLOWED_ORIGINS="shop.example", DEFAULT_COUNTRY="Germany",
                             META_API_VERSION="27"), now=standin.clock())
    assert code == 1
    for name in ("META_PIXEL_ID", "ALLOWED_ORIGINS", "DEFAULT_COUNTRY", "META_API_VERSION"):
        assert f"FAIL  settings: {name}" in text
    assert "Germany" not in text
    assert standin.requests == 0  # settings first: no Graph call with broken settings


def test_no_test_event_code_means_no_call(standin):
    code, text = run(env_for(standin), test_event_code=None)
    assert code == 0 and "WARN  token: not checked" in text
    assert standin.requests == 0


def test_test_event_code_in_production_is_a_warning(standin):
    code, text = run(env_for(standin, META_TEST_EVENT_CODE="TEST9"), test_event_code=None,
                     now=standin.clock())
    assert code == 0, text
    assert "WARN  settings: META_TEST_EVENT_CODE is set" in text
    assert standin.accepted[0]["test_event_code"] == "TEST9"


@pytest.mark.parametrize("version, today, level, words", [
    ("v25.0", date(2026, 11, 24), "ok", "in 91 days"),       # 2027-02-23 is 91 days away
    ("v25.0", date(2026, 11, 25), "warn", "in 90 day(s)"),   # the first day of the warning
    ("v25.0", date(2027, 2, 22), "warn", "in 1 day(s)"),
    ("v25.0", date(2027, 2, 23), "fail", "expired on 2027-02-23"),
    ("v24.0", date(2026, 12, 1), "fail", "expired on 2026-11-10"),
    ("v27.0", date(2026, 12, 1), "ok", "no expiry announced"),
    ("v12.0", date(2026, 12, 1), "fail", "older than v16.0"),
    ("v99.0", date(2026, 12, 1), "warn", "not in doctor's table"),
])
def test_version_expiry(version, today, level, words):
    status = version_status(version, today)
    assert status.level == level and words in status.text, status


def test_version_warning_with_an_injected_date(standin):
    code, text = run(env_for(standin, META_API_VERSION="v25.0"), today=date(2027, 1, 10),
                     skip_token=True)
    assert code == 0 and "WARN  api version: v25.0 expires on 2027-02-23, in 44 day(s)" in text
    code, text = run(env_for(standin, META_API_VERSION="v25.0"), today=date(2027, 3, 1),
                     skip_token=True)
    assert code == 1 and "FAIL  api version: v25.0 expired" in text


def test_table_is_ordered_and_the_default_version_is_in_it():
    from capi_relay.config import DEFAULT_API_VERSION

    assert DEFAULT_API_VERSION in MARKETING_API_VERSIONS
    for released, expires in MARKETING_API_VERSIONS.values():
        assert expires is None or expires > released


def test_command_line_with_an_env_file(standin, tmp_path, capsys):
    env_file = tmp_path / "relay.env"
    lines = [f"export {k}='{v}'" for k, v in env_for(standin).items()]
    env_file.write_text("# the relay's settings\n" + "\n".join(lines) + "\n")
    code = main(["doctor", "--env-file", str(env_file), "--test-event-code", "TEST55",
                 "--today", "2026-12-01"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert standin.accepted[0]["test_event_code"] == "TEST55"
    assert TOKEN not in out
    env_file.write_text("not a setting\n")
    assert main(["doctor", "--env-file", str(env_file)]) == 1


def test_settings_of_a_deployed_function(standin, tmp_path, capsys, monkeypatch):
    """--function reads the function's environment from gcloud (a stand-in gcloud here)."""
    import json
    import os
    import stat

    described = {"name": "projects/p/locations/europe-west1/functions/capi-relay-process",
                 "serviceConfig": {"environmentVariables": env_for(standin)}}
    answer = tmp_path / "describe.json"
    answer.write_text(json.dumps(described))
    calls = tmp_path / "calls.txt"
    gcloud = tmp_path / "bin" / "gcloud"
    gcloud.parent.mkdir()
    gcloud.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\ncat {answer}\n")
    gcloud.chmod(gcloud.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{gcloud.parent}{os.pathsep}{os.environ['PATH']}")

    code = main(["doctor", "--function", "capi-relay-process", "--region", "europe-west1",
                 "--test-event-code", "TEST77", "--today", "2026-12-01"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert calls.read_text().split() == ["functions", "describe", "capi-relay-process", "--gen2",
                                         "--format=json", "--region=europe-west1"]
    assert standin.accepted[0]["test_event_code"] == "TEST77"

    gcloud.write_text("#!/bin/sh\necho 'ERROR: NOT_FOUND' >&2\nexit 1\n")
    assert main(["doctor", "--function", "nope"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_each_pixel_of_pixels_has_its_token_checked_with_its_own_test_code():
    import json

    with GraphStandin("127.0.0.1", 0, expected_token=TOKEN, log=io.StringIO(),
                      pixel_tokens={"2222222222": "EAApixelB", "3333333333": "EAApixelC"}) as g:
        pixels = [{"id": "2222222222", "token_env": "TOKEN_B", "test_event_code": "TESTB"},
                  {"id": "3333333333", "token_env": "TOKEN_C"},
                  {"id": "4444444444"}]
        env = env_for(g, PIXELS=json.dumps(pixels), TOKEN_B="EAApixelB",
                      TOKEN_C="EAAstaleC")
        code, text = run(env, now=g.clock(), pixel_codes={"3333333333": "TESTC"})
        assert code == 1, text
        assert f"OK    token: Meta accepted a test event for pixel {PIXEL}" in text
        assert "OK    token: Meta accepted a test event for pixel 2222222222" in text
        assert "FAIL  token: pixel 3333333333: Meta rejected the token (code 190" in text
        assert "WARN  token: pixel 4444444444: not checked: pass --pixel-test-event-code" \
            in text
        received = g.accepted_by_pixel()
        assert [e["test_event_code"] for e in received["2222222222"]] == ["TESTB"]
        assert [e["test_event_code"] for e in received[PIXEL]] == ["TEST123"]
        assert "3333333333" not in received and "4444444444" not in received
        assert "EAApixelB" not in text and "EAAstaleC" not in text
