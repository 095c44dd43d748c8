#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian's packages) for the browser tests.
# Idempotent: does nothing when both are already there. Needs root (or sudo) for apt-get.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "install_browser.sh: need root to apt-get install chromium chromium-driver" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver

for binary in /usr/bin/chromium /usr/bin/chromedriver; do
    if [[ ! -x "$binary" ]]; then
        echo "install_browser.sh: $binary missing after install" >&2
        exit 1
    fi
done
