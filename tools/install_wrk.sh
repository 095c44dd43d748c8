#!/usr/bin/env bash
# Installs wrk (Debian's package) for `make bench`'s ingest row. Idempotent: does nothing when
# wrk is already there. Needs root (or sudo) for apt-get; without it, says so and the bench
# row is skipped with that reason.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "install_wrk.sh: need root to apt-get install wrk (make bench skips its ingest row)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends wrk
command -v wrk >/dev/null 2>&1 || { echo "install_wrk.sh: wrk missing after install" >&2; exit 1; }
