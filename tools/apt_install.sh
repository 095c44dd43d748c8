#!/usr/bin/env bash
# Installs Debian packages for a test or bench tool, unless its programs are already there.
#   tools/apt_install.sh "program [program...]" package [package...]
# Idempotent. Needs root (or passwordless sudo) for apt-get; says so otherwise.
set -euo pipefail

programs=$1
shift
have_all() {
    for program in $programs; do
        command -v "$program" >/dev/null 2>&1 || return 1
    done
}
have_all && exit 0

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "apt_install.sh: need root to apt-get install $*" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "$@"
have_all || { echo "apt_install.sh: $programs missing after installing $*" >&2; exit 1; }
