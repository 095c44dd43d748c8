#!/usr/bin/env bash
# Checks what the emulator-backed stack needs and says exactly what is missing.
# With 'test' it also checks what only the tests need (Node.js for the sGTM template harness).
set -u
missing=()
command -v gcloud >/dev/null 2>&1 || missing+=("the Google Cloud CLI (gcloud): https://cloud.google.com/sdk/docs/install")
command -v java >/dev/null 2>&1 || missing+=("Java 11+ (the emulators run on it), e.g. 'apt-get install default-jre-headless'")
if [ "${1:-}" = test ]; then
  command -v node >/dev/null 2>&1 || missing+=("Node.js 18+ (node) for the sGTM tag template test, e.g. 'apt-get install nodejs'")
fi
if command -v gcloud >/dev/null 2>&1; then
  root=$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null)
  [ -d "$root/platform/pubsub-emulator" ] || missing+=("the Pub/Sub emulator: 'gcloud components install pubsub-emulator beta' (or apt package google-cloud-cli-pubsub-emulator)")
  [ -d "$root/platform/cloud-firestore-emulator" ] || missing+=("the Firestore emulator: 'gcloud components install cloud-firestore-emulator' (or apt package google-cloud-cli-firestore-emulator)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "capi-relay needs:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 1
fi
