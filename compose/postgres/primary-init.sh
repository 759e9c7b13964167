#!/usr/bin/env bash
# compose/postgres/primary-init.sh: mounted into the primary's
# /docker-entrypoint-initdb.d, so the postgres image runs it once, when it initialises an
# empty data directory (with a temporary server listening on the local socket only).
#
# Creates the role the replica streams WAL with and lets it in over the compose network.
# wal_level=replica and max_wal_senders are set on the command line in compose.yaml.
#
# Written to be safe when the entrypoint sources it instead of executing it (it does so
# when the file lost its executable bit): no `exit`, no `set -u`.
set -eo pipefail

: "${REPLICATION_USER:=replicator}"
if [ -z "${REPLICATION_PASSWORD:-}" ]; then
    echo "primary-init: REPLICATION_PASSWORD is not set" >&2
    false
fi

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    --set=repl_user="$REPLICATION_USER" --set=repl_password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE :"repl_user" WITH REPLICATION LOGIN PASSWORD :'repl_password';
SQL

# Replication connections do not match the image's `host all all all ...` line.
echo "host replication ${REPLICATION_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
echo "primary-init: replication role ${REPLICATION_USER} created"
