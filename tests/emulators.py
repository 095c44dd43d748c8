"""Whether the emulators can run here, and what to do when they cannot."""

import os
import shutil

import pytest


def emulators_available() -> bool:
    return bool(shutil.which("gcloud") and shutil.which("java"))


def require_emulators() -> None:
    """Skips on a developer machine without gcloud; fails in CI, where they must run."""
    if emulators_available():
        return
    if os.environ.get("CAPI_RELAY_REQUIRE_EMULATORS") or os.environ.get("CI"):
        pytest.fail("the Pub/Sub and Firestore emulators are required here (gcloud + java)")
    pytest.skip("gcloud emulators not installed")
