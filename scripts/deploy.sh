#!/usr/bin/env bash
# Deploys capi-relay to one Google Cloud project: bootstrap (APIs, state bucket, backend
# config), terraform init + plan + apply of infra/, optionally the Meta token, then a smoke test.
#
#   PROJECT_ID=my-proj REGION=europe-west1 META_PIXEL_ID=1234567890 scripts/deploy.sh [--set-token]
#
# Required environment: PROJECT_ID, REGION, META_PIXEL_ID.
# Optional environment:
#   STATE_BUCKET            Terraform state bucket (default: <PROJECT_ID>-capi-relay-tfstate)
#   STATE_PREFIX            prefix of the state in that bucket (default: capi-relay)
#   META_ACCESS_TOKEN_STDIN 1 = read the Conversions API token from stdin (same as --set-token)
#   AUTO_APPROVE            1 = apply the plan without asking (needed without a terminal)
# Other Terraform inputs go in infra/terraform.tfvars (see infra/terraform.tfvars.example).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/infra"
PROG="deploy.sh"

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}

info() {
  echo "$PROG: $*" >&2
}

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

set_token=0
[[ "${META_ACCESS_TOKEN_STDIN:-0}" == "1" ]] && set_token=1
while (($#)); do
  case "$1" in
    --set-token) set_token=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

# --- preconditions: tools, login, variables -----------------------------------------------

command -v gcloud >/dev/null 2>&1 ||
  die "gcloud is not installed or not on PATH; install the Google Cloud CLI first"
command -v terraform >/dev/null 2>&1 ||
  die "terraform is not installed or not on PATH; install Terraform >= 1.9"

active_account="$(gcloud auth list --filter=status:ACTIVE --format='value(account)' 2>/dev/null || true)"
[[ -n "$active_account" ]] ||
  die "gcloud has no active account; run 'gcloud auth login' (and 'gcloud auth application-default login')"

missing=()
for name in PROJECT_ID REGION META_PIXEL_ID; do
  [[ -n "${!name:-}" ]] || missing+=("$name")
done
((${#missing[@]} == 0)) ||
  die "missing required variable(s): ${missing[*]}; e.g. PROJECT_ID=my-proj REGION=europe-west1 META_PIXEL_ID=1234567890 $0"

[[ "$META_PIXEL_ID" =~ ^[0-9]+$ ]] || die "META_PIXEL_ID must be the numeric pixel ID"

STATE_BUCKET="${STATE_BUCKET:-${PROJECT_ID}-capi-relay-tfstate}"
STATE_PREFIX="${STATE_PREFIX:-capi-relay}"
info "project $PROJECT_ID, region $REGION, as $active_account"

# Read the token first, before anything else can consume stdin; it is kept in this shell only,
# never echoed, never passed as an argument, and handed to gcloud on a pipe.
token=""
if ((set_token)); then
  [[ -t 0 ]] && echo -n "Meta Conversions API access token (input hidden): " >&2
  IFS= read -rs token || true
  [[ -t 0 ]] && echo >&2
  [[ -n "$token" ]] || die "--set-token: no token on stdin"
fi

# --- one-time bootstrap (idempotent) --------------------------------------------------------

info "enabling the APIs Terraform itself needs"
gcloud services enable serviceusage.googleapis.com cloudresourcemanager.googleapis.com \
  storage.googleapis.com --project "$PROJECT_ID" --quiet

if gcloud storage buckets describe "gs://$STATE_BUCKET" --project "$PROJECT_ID" >/dev/null 2>&1; then
  info "state bucket gs://$STATE_BUCKET exists"
else
  info "creating state bucket gs://$STATE_BUCKET"
  gcloud storage buckets create "gs://$STATE_BUCKET" --project "$PROJECT_ID" --location "$REGION" \
    --uniform-bucket-level-access --public-access-prevention --quiet
  # Versioning keeps earlier states, so a bad apply can be rolled back.
  gcloud storage buckets update "gs://$STATE_BUCKET" --versioning --quiet
fi

printf 'bucket = "%s"\nprefix = "%s"\n' "$STATE_BUCKET" "$STATE_PREFIX" >"$INFRA/backend.hcl"

# Terraform authenticates with Application Default Credentials; without them, lend it the
# active gcloud account's short-lived token.
adc_file="${CLOUDSDK_CONFIG:-$HOME/.config/gcloud}/application_default_credentials.json"
if [[ -z "${GOOGLE_APPLICATION_CREDENTIALS:-}" && ! -f "$adc_file" && -z "${GOOGLE_OAUTH_ACCESS_TOKEN:-}" ]]; then
  GOOGLE_OAUTH_ACCESS_TOKEN="$(gcloud auth print-access-token)"
  export GOOGLE_OAUTH_ACCESS_TOKEN
fi

# --- terraform ----------------------------------------------------------------------------

tf_vars=(-var "project_id=$PROJECT_ID" -var "region=$REGION" -var "meta_pixel_id=$META_PIXEL_ID")

terraform -chdir="$INFRA" init -input=false -reconfigure -backend-config=backend.hcl
terraform -chdir="$INFRA" plan -input=false -out=tfplan "${tf_vars[@]}"

if [[ "${AUTO_APPROVE:-0}" != "1" ]]; then
  (exec </dev/tty) 2>/dev/null ||
    die "no terminal to confirm the plan; review it and rerun with AUTO_APPROVE=1"
  read -r -p "Apply this plan? [y/N] " answer </dev/tty
  [[ "$answer" =~ ^[Yy]$ ]] || die "not applied"
fi
terraform -chdir="$INFRA" apply -input=false tfplan
rm -f "$INFRA/tfplan"

# --- token --------------------------------------------------------------------------------

secret_id="$(terraform -chdir="$INFRA" output -raw meta_token_secret)"
if ((set_token)); then
  printf '%s' "$token" |
    gcloud secrets versions add "$secret_id" --project "$PROJECT_ID" --data-file=- --quiet >/dev/null
  token=""
  info "added a new version of secret $secret_id"
elif ! gcloud secrets versions list "$secret_id" --project "$PROJECT_ID" --filter=state:ENABLED \
  --format='value(name)' --limit=1 2>/dev/null | grep -q .; then
  info "secret $secret_id has no enabled version yet: rerun with --set-token, or"
  info "  gcloud secrets versions add $secret_id --project $PROJECT_ID --data-file=-   (paste, then Ctrl-D)"
fi

# --- result -------------------------------------------------------------------------------

ingest_url="$(terraform -chdir="$INFRA" output -raw ingest_url)"
echo
echo "Ingest URL: $ingest_url"
echo
echo "Smoke test (set meta_test_event_code in terraform.tfvars to see it under Test Events;"
echo "KEY is one of the source keys in the ingest keys secret, see infra/README.md 'Source keys'):"
cat <<EOF
  curl -sS -X POST '$ingest_url' -H 'Content-Type: application/json' -H "Authorization: Bearer \$KEY" \\
    -d '{"event_name": "PageView", "event_id": "deploy-smoke-$(date +%s)", "action_source": "website",
         "event_source_url": "https://example.com/", "user_data": {"external_id": "deploy-smoke", "client_user_agent": "curl"}}'
EOF
