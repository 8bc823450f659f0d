#!/usr/bin/env bash
# Makes sure the PostgreSQL the tests use answers on 127.0.0.1:5432 (or ZENGINE_TEST_POSTGRES_URL).
# Starts an installed but stopped cluster; installs one (trust auth on loopback) when none exists.
set -euo pipefail

url="${ZENGINE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
ready() { psql "$url" -qtAc 'select 1' >/dev/null 2>&1; }

ready && exit 0

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "ensure-postgres: installing postgresql"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql postgresql-client
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    # Fresh, test-only cluster: trust local connections, as on the CI machines.
    $SUDO sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$hba"
  done
fi
for version in $(ls /etc/postgresql 2>/dev/null); do
  echo "ensure-postgres: starting cluster $version/main"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || $SUDO pg_ctlcluster "$version" main start || true
done
for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
echo "ensure-postgres: PostgreSQL is not reachable at $url; the PostgreSQL tests would fail" >&2
exit 1
