#!/usr/bin/env bash
# compose/postgres/replica-entrypoint.sh: entrypoint of the postgres-replica service.
#
# On first start (no PG_VERSION in $PGDATA) it clones the primary with pg_basebackup
# (-R writes standby.signal and primary_conninfo, -X stream copies the WAL needed to
# start) into a scratch directory and moves it into place only once complete, so an
# interrupted clone is simply redone. Then it hands over to the image's own entrypoint,
# which fixes ownership and permissions, drops to the postgres user and starts the
# server as a hot standby. On later starts it goes straight to the server.
#
# Environment: PGDATA (a directory *inside* the volume, so the scratch copy lives on the
# same filesystem), PRIMARY_HOST, PRIMARY_PORT (5432), REPLICATION_USER,
# REPLICATION_PASSWORD.
set -euo pipefail

: "${PGDATA:?PGDATA must be set}"
: "${PRIMARY_HOST:?PRIMARY_HOST must be set}"
: "${REPLICATION_USER:?REPLICATION_USER must be set}"
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD must be set}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    parent="$(dirname "$PGDATA")"
    scratch="$PGDATA.clone"
    echo "replica: $PGDATA holds no cluster: cloning ${PRIMARY_HOST}:${PRIMARY_PORT}"
    mkdir -p "$parent"
    rm -rf "$scratch" "$PGDATA"
    install -d -m 0700 -o postgres -g postgres "$scratch"

    until gosu postgres pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; do
        echo "replica: waiting for the primary"
        sleep 1
    done

    # The password goes in the connection string so that -R writes it into
    # primary_conninfo, which the standby uses to reconnect after a restart.
    gosu postgres pg_basebackup \
        --dbname="host=${PRIMARY_HOST} port=${PRIMARY_PORT} user=${REPLICATION_USER} password=${REPLICATION_PASSWORD} application_name=postgres-replica" \
        --pgdata="$scratch" \
        --write-recovery-conf \
        --wal-method=stream \
        --checkpoint=fast \
        --no-password
    mv "$scratch" "$PGDATA"
    echo "replica: clone complete"
fi

exec docker-entrypoint.sh "$@"
