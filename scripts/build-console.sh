#!/usr/bin/env bash
# Builds the operator console (console/ → console/dist, served by the API at /console/).
# Idempotent: installs the locked npm packages only when the lockfile changed, and builds only
# when a source is newer than the last build.
set -euo pipefail
cd "$(dirname "$0")/../console"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "build-console: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.package-lock.json
fi
if [ ! -f dist/index.html ] || [ -n "$(find src index.html vite.config.ts tsconfig.json package-lock.json -newer dist/index.html -print -quit)" ]; then
  echo "build-console: vite build"
  npm run --silent build
fi
