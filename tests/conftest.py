"""Shared fixtures: the functions/ dir on the path, and the emulator-backed local stack."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))
sys.path.insert(0, str(ROOT / "tests"))

from emulators import require_emulators  # noqa: E402  (needs the path above)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """One local stack for the integration tests: emulators, functions, Graph stand-in."""
    require_emulators()
    from capi_relay_dev.localstack import LocalStack

    log_dir = tmp_path_factory.mktemp("stack-logs")
    with LocalStack(log_dir=log_dir, standin_options={"seed": 7}) as running:
        yield running


@pytest.fixture
def logs():
    """The relay's structured log lines written during the test, parsed."""
    import io
    import json

    from capi_relay import log

    stream = io.StringIO()
    log.set_stream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    log.set_stream(None)


@pytest.fixture(autouse=True)
def _reset_bootstrap():
    yield
    from capi_relay import bootstrap

    bootstrap.reset()
