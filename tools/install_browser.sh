#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian's packages) for the browser tests.
# Idempotent: does nothing when both are already there. Needs root (or sudo) for apt-get.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi
exec bash "$(dirname "$0")/apt_install.sh" "/usr/bin/chromium /usr/bin/chromedriver" \
    chromium chromium-driver
