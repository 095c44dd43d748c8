"""Headless Chromium for the browser tests: where it is, how it starts, what to do without it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: flags every browser test starts Chromium with; each adds its own --host-resolver-rules
BASE_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--window-size=1000,900")


def _must_run() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("CAPI_RELAY_REQUIRE_EMULATORS"))


def _unavailable(reason: str) -> None:
    if _must_run():
        pytest.fail(f"browser tests must run here: {reason}")
    pytest.skip(reason)


def require_browser() -> None:
    """Chromium and its driver from Debian (installed on demand) and selenium."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        result = subprocess.run(["bash", str(ROOT / "tools" / "install_browser.sh")],
                                capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            _unavailable("could not install chromium: " + result.stderr[-500:])
    try:
        import selenium  # noqa: F401
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")


def start_driver(profile_dir: Path, flags: tuple[str, ...]):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in flags:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(20)
    return driver
