"""Fixtures of the infra tests: the parsed Terraform of infra/ (helpers live in tfmodel.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helpers module sits beside this file; make it importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tfmodel import INFRA_DIR, Terraform, load_terraform


@pytest.fixture(scope="session")
def tf() -> Terraform:
    assert INFRA_DIR.is_dir(), f"{INFRA_DIR} is missing"
    return load_terraform(INFRA_DIR)
