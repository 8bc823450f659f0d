#!/bin/sh
# Creates and migrates Temporal's two databases (temporal, temporal_visibility) with the
# admin-tools image's temporal-sql-tool, the way Temporal documents it now that auto-setup is
# gone (temporalio/samples-server, compose/scripts/setup-postgres.sh). Safe to run again.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
port="${DB_PORT:-5432}"
until nc -z -w 10 "$POSTGRES_SEEDS" "$port"; do sleep 1; done
schema=/etc/temporal/schema/postgresql/v12
for db in temporal:temporal temporal_visibility:visibility; do
  name="${db%%:*}" dir="${db#*:}"
  tool="temporal-sql-tool --plugin postgres12 --ep $POSTGRES_SEEDS -u $POSTGRES_USER -p $port --db $name"
  $tool create || true          # exists already on a second run
  $tool setup-schema -v 0.0
  $tool update-schema -d "$schema/$dir/versioned"
done
