#!/usr/bin/env bash
# Static checks of infra/: terraform fmt and checkov, offline, no providers needed.
#
# Checkov has many pinned dependencies, so it lives in its own venv (.venv-tools/) that this script
# creates on first use, apart from the project's .venv. Exits non-zero if fmt or any checkov check
# fails; the only accepted exceptions are inline `# checkov:skip=CKV_...:reason` comments in infra/.
set -euo pipefail

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_VENV="${TOOLS_VENV:-$ROOT/.venv-tools}"
PYTHON="${PYTHON:-python3}"
cd "$ROOT"

if ! command -v terraform >/dev/null 2>&1; then
  echo "check_infra: terraform is not on PATH (need >= 1.11)" >&2
  exit 1
fi

echo "check_infra: terraform fmt -check -recursive infra"
if ! terraform fmt -check -recursive -diff infra; then
  echo "check_infra: run 'terraform fmt -recursive infra' to fix the formatting above" >&2
  exit 1
fi

# An inline skip is accepted only with a written reason: `# checkov:skip=CKV_GCP_62:why`.
if grep -rnE --include='*.tf' 'checkov:skip=[A-Za-z0-9_]+[[:space:]]*(:[[:space:]]*)?$' infra; then
  echo "check_infra: the checkov skips above give no reason; write one after the check ID" >&2
  exit 1
fi

# A stamp per version: asking `checkov --version` would cost seconds of imports on every run.
STAMP="$TOOLS_VENV/.checkov-$CHECKOV_VERSION"
if [[ ! -f "$STAMP" || ! -x "$TOOLS_VENV/bin/checkov" ]]; then
  echo "check_infra: installing checkov==$CHECKOV_VERSION into $TOOLS_VENV"
  start=$SECONDS
  "$PYTHON" -m venv "$TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
  touch "$STAMP"
  echo "check_infra: checkov installed in $((SECONDS - start))s"
fi

# Run offline: no platform upload, no policy/mapping download, no version check, no SCA.
export BC_SKIP_MAPPING=TRUE
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
export LOG_LEVEL="${LOG_LEVEL:-WARNING}"

echo "check_infra: checkov -d infra"
start=$SECONDS
"$TOOLS_VENV/bin/checkov" -d infra --quiet --compact --framework terraform \
  --skip-download --download-external-modules false
echo "check_infra: checkov finished in $((SECONDS - start))s"
