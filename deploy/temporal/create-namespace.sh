#!/bin/sh
# Waits for the frontend, then creates the namespace ZEngine uses unless it exists.
set -eu
: "${TEMPORAL_ADDRESS:?}"
ns="${DEFAULT_NAMESPACE:-default}"
until temporal operator cluster health --address "$TEMPORAL_ADDRESS"; do sleep 2; done
temporal operator namespace describe -n "$ns" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 ||
  temporal operator namespace create -n "$ns" --address "$TEMPORAL_ADDRESS"
