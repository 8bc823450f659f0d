#!/usr/bin/env bash
# Checks the dependency graph with cargo-deny (deny.toml): bans, licenses, sources.
# cargo-deny is pinned and built once into .tools/cargo-deny (its build is kept in
# $CARGO_TARGET_DIR/cargo-deny, so a new checkout on the same machine only links it).
# `advisories` is not checked here: it downloads the RustSec database at run time, and CI has no
# network beyond the package registries (docs/security.md).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="0.20.2"
ROOT="$PWD/.tools/cargo-deny"
if [ ! -x "$ROOT/bin/cargo-deny" ] || [ ! -f "$ROOT/.version-$VERSION" ]; then
  echo "deny: cargo install cargo-deny@$VERSION"
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zengine-target}/cargo-deny" \
    cargo install cargo-deny --version "$VERSION" --locked --root "$ROOT" --quiet
  rm -f "$ROOT"/.version-*
  touch "$ROOT/.version-$VERSION"
fi
"$ROOT/bin/cargo-deny" check bans licenses sources
