#!/usr/bin/env bash
# Installs wrk (Debian's package) for `make bench`'s ingest row; without it that row is skipped,
# saying why. Idempotent. Needs root (or sudo) for apt-get.
exec bash "$(dirname "$0")/apt_install.sh" wrk wrk
