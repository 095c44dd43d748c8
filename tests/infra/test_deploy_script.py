"""scripts/deploy.sh: syntax, clear failures, and the token never leaking, with a fake gcloud.

The script runs from a copy under tmp_path (it finds infra/ beside itself), with fake `gcloud`
and `terraform` first on PATH that only log what they were asked. Nothing reaches a network.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "deploy.sh"
BASH = shutil.which("bash") or "/bin/bash"
TOKEN = "EAAB-not-a-real-token-0123456789"

FAKE_GCLOUD = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$FAKE_LOG/gcloud.args"
case "$*" in
  "auth list"*) [ -n "${FAKE_ACCOUNT:-}" ] && echo "$FAKE_ACCOUNT"; exit 0 ;;
  "auth print-access-token"*) echo "ya29.fake" ;;
  "secrets versions add"*) cat > "$FAKE_LOG/secret.stdin" ;;
  "secrets versions list"*) echo "projects/p/secrets/s/versions/1" ;;
esac
exit 0
"""

FAKE_TERRAFORM = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$FAKE_LOG/terraform.args"
case "$*" in
  *"output -raw ingest_url"*) printf 'https://capi-relay-ingest-abc-ew.a.run.app' ;;
  *"output -raw meta_token_secret"*) printf 'capi-relay-meta-token' ;;
esac
exit 0
"""

REQUIRED = {"PROJECT_ID": "my-shop-capi", "REGION": "europe-west1", "META_PIXEL_ID": "123456789012"}


@pytest.fixture
def sandbox(tmp_path):
    """A copy of the script with an empty infra/ beside it, and a bin/ of fakes."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "infra").mkdir()
    shutil.copy2(SCRIPT, tmp_path / "scripts" / "deploy.sh")
    fakes = tmp_path / "bin"
    fakes.mkdir()
    for name, text in (("gcloud", FAKE_GCLOUD), ("terraform", FAKE_TERRAFORM)):
        (fakes / name).write_text(text)
        (fakes / name).chmod(0o755)
    (tmp_path / "log").mkdir()
    (tmp_path / "home").mkdir()
    return tmp_path


def run(sandbox: Path, env: dict[str, str], *args: str, stdin: str = "",
        path: str | None = None) -> subprocess.CompletedProcess:
    base = {
        "PATH": path if path is not None else f"{sandbox / 'bin'}:/usr/bin:/bin",
        "HOME": str(sandbox / "home"),
        "FAKE_LOG": str(sandbox / "log"),
        "LANG": "C",
    }
    return subprocess.run(
        [BASH, str(sandbox / "scripts" / "deploy.sh"), *args],
        check=False, env={**base, **env}, input=stdin, capture_output=True, text=True, timeout=60,
        cwd=sandbox,
    )


def log(sandbox: Path, name: str) -> str:
    path = sandbox / "log" / name
    return path.read_text() if path.exists() else ""


def test_bash_syntax_is_valid():
    result = subprocess.run([BASH, "-n", str(SCRIPT)], check=False, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_script_is_strict():
    assert "set -euo pipefail" in SCRIPT.read_text()


def test_no_active_gcloud_account_is_a_clear_error(sandbox):
    result = run(sandbox, {**REQUIRED, "FAKE_ACCOUNT": ""})
    assert result.returncode != 0
    assert "no active account" in result.stderr
    assert "gcloud auth login" in result.stderr
    assert "auth list --filter=status:ACTIVE" in log(sandbox, "gcloud.args")
    assert log(sandbox, "terraform.args") == "", "terraform ran without a login"


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_missing_variable_is_named(sandbox, missing):
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    result = run(sandbox, {**env, "FAKE_ACCOUNT": "ops@example.com"})
    assert result.returncode != 0
    assert "missing required variable(s)" in result.stderr
    assert missing in result.stderr.split("missing required variable(s):")[1].split(";")[0]
    assert log(sandbox, "terraform.args") == ""


def test_gcloud_not_installed(sandbox):
    only = sandbox / "only"
    only.mkdir()
    (only / "dirname").symlink_to(shutil.which("dirname"))
    result = run(sandbox, {**REQUIRED}, path=str(only))
    assert result.returncode != 0
    assert "gcloud is not installed" in result.stderr


def test_unknown_argument_is_rejected(sandbox):
    result = run(sandbox, {**REQUIRED, "FAKE_ACCOUNT": "ops@example.com"}, "--frobnicate")
    assert result.returncode != 0
    assert "unknown argument '--frobnicate'" in result.stderr


def test_full_run_sets_token_from_stdin_without_leaking_it(sandbox):
    env = {**REQUIRED, "FAKE_ACCOUNT": "ops@example.com", "AUTO_APPROVE": "1"}
    result = run(sandbox, env, "--set-token", stdin=TOKEN + "\n")
    assert result.returncode == 0, result.stderr

    # The token reached gcloud on stdin, exactly, and nowhere else.
    assert log(sandbox, "secret.stdin") == TOKEN
    for text in (result.stdout, result.stderr, log(sandbox, "gcloud.args"),
                 log(sandbox, "terraform.args")):
        assert TOKEN not in text
    assert "secrets versions add capi-relay-meta-token --project my-shop-capi --data-file=-" \
        in log(sandbox, "gcloud.args")

    # Bootstrap, backend config, then init/plan/apply with the required variables.
    backend = (sandbox / "infra" / "backend.hcl").read_text()
    assert 'bucket = "my-shop-capi-capi-relay-tfstate"' in backend
    tf_calls = log(sandbox, "terraform.args").splitlines()
    assert [c.split()[1] for c in tf_calls[:3]] == ["init", "plan", "apply"]
    assert "-var meta_pixel_id=123456789012" in tf_calls[1]
    assert "-backend-config=backend.hcl" in tf_calls[0]

    assert "Ingest URL: https://capi-relay-ingest-abc-ew.a.run.app" in result.stdout
    assert "curl -sS -X POST 'https://capi-relay-ingest-abc-ew.a.run.app'" in result.stdout


def test_token_via_environment_switch(sandbox):
    env = {**REQUIRED, "FAKE_ACCOUNT": "ops@example.com", "AUTO_APPROVE": "1",
           "META_ACCESS_TOKEN_STDIN": "1"}
    result = run(sandbox, env, stdin=TOKEN)
    assert result.returncode == 0, result.stderr
    assert log(sandbox, "secret.stdin") == TOKEN


def test_empty_token_is_refused_before_anything_changes(sandbox):
    env = {**REQUIRED, "FAKE_ACCOUNT": "ops@example.com", "AUTO_APPROVE": "1"}
    result = run(sandbox, env, "--set-token", stdin="")
    assert result.returncode != 0
    assert "no token on stdin" in result.stderr
    assert log(sandbox, "terraform.args") == ""


@pytest.mark.skipif(shutil.which("setsid") is None, reason="setsid is not available")
def test_without_a_terminal_apply_needs_auto_approve(sandbox):
    # setsid runs the script without a controlling terminal, as in CI.
    env = {**REQUIRED, "FAKE_ACCOUNT": "ops@example.com"}
    result = subprocess.run(
        [shutil.which("setsid"), BASH, str(sandbox / "scripts" / "deploy.sh")],
        env={"PATH": f"{sandbox / 'bin'}:/usr/bin:/bin", "HOME": str(sandbox / "home"),
             "FAKE_LOG": str(sandbox / "log"), **env},
        check=False, input="", capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "AUTO_APPROVE=1" in result.stderr
    assert [c.split()[1] for c in log(sandbox, "terraform.args").splitlines()] == ["init", "plan"]
