#!/usr/bin/env bash
# scripts/replica.sh — a local PostgreSQL streaming replica for the test suite.
#
# Usage: scripts/replica.sh start|stop|kill|status|destroy
#
#   start   Create the replica if missing (pg_basebackup from the primary on
#           127.0.0.1:5432), start it, and wait until it is in recovery and
#           streaming from the primary. A no-op when it is already up.
#   stop    Stop it (pg_ctl stop -m fast). A no-op when it is not running.
#   kill    Stop it with -m immediate: simulates a crash (used by fault tests).
#   status  Print its state. Exit 0 = running and in recovery, 3 = not running,
#           1 = running but unreachable / not a standby.
#   destroy Stop it, drop its replication slot on the primary and delete its
#           data directory (the slot keeps WAL on the primary while it exists).
#
# The replica streams through a physical replication slot on the primary
# (REPLICA_SLOT, default commerce_gateway_replica_<port>). Without one, a
# checkpoint on the primary (a timed one, a CHECKPOINT in a test, another
# pg_basebackup) can recycle WAL the replica still needs, and it then sits in
# recovery without ever streaming again. The slot makes the primary keep WAL
# while the replica is stopped or killed; `destroy` releases it.
#
# Environment (all optional):
#   REPLICA_DIR       data directory       (default /var/tmp/commerce-gateway-replica)
#   REPLICA_PORT      port on 127.0.0.1    (default 5433)
#   REPLICA_LOG       server log           (default <REPLICA_DIR>/../replica.log)
#   PRIMARY_HOST/PRIMARY_PORT/PRIMARY_USER (default 127.0.0.1 / 5432 / postgres)
#   REPLICA_TIMEOUT   seconds to wait for the replica to come up (default 30)
#   REPLICA_SLOT      slot on the primary  (default commerce_gateway_replica_<port>)
#   PG_BINDIR         PostgreSQL binaries  (default /usr/lib/postgresql/<major>/bin)
#
# Meant to run as root (it runs the PostgreSQL tools as the `postgres` user via
# runuser, because PostgreSQL refuses to run as root); running it as `postgres`
# works too, except for editing the primary's pg_hba.conf when that is needed.
#
# Idempotent and serialised: concurrent invocations (e.g. parallel tests) take
# a lock, so a `kill` and a `start` never interleave. With an existing data
# directory, start/stop/kill take a second or two.
set -euo pipefail

REPLICA_DIR="${REPLICA_DIR:-/var/tmp/commerce-gateway-replica}"
REPLICA_PORT="${REPLICA_PORT:-5433}"
PRIMARY_HOST="${PRIMARY_HOST:-127.0.0.1}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
PRIMARY_USER="${PRIMARY_USER:-postgres}"
REPLICA_TIMEOUT="${REPLICA_TIMEOUT:-30}"
REPLICA_SLOT="${REPLICA_SLOT:-commerce_gateway_replica_${REPLICA_PORT}}"

# Never let a user's psqlrc, service file or default database change what we
# parse, and never hang on a connection attempt.
export PGCONNECT_TIMEOUT=3
unset PGSERVICE PGDATABASE PGOPTIONS PGHOST PGPORT PGUSER PGDATA PGSSLMODE || true

log() { printf '[replica] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- sanity checks on the configured paths ---------------------------------
[[ "$REPLICA_DIR" == /* ]] || die "REPLICA_DIR must be an absolute path (got '$REPLICA_DIR')"
REPLICA_DIR="${REPLICA_DIR%/}"
case "$REPLICA_DIR" in
    "" | / | /var | /var/tmp | /tmp | /root | /home | /usr | /etc | /var/lib | /var/lib/postgresql*)
        die "refusing to use '$REPLICA_DIR' as the replica data directory" ;;
esac
[[ "$REPLICA_PORT" =~ ^[0-9]+$ ]] || die "REPLICA_PORT must be a number (got '$REPLICA_PORT')"
[[ "$REPLICA_SLOT" =~ ^[a-z0-9_]+$ ]] || die "REPLICA_SLOT may only contain a-z, 0-9 and _ (got '$REPLICA_SLOT')"
[[ "$REPLICA_PORT" != "$PRIMARY_PORT" ]] || die "REPLICA_PORT must differ from the primary's port"
PARENT_DIR="$(dirname "$REPLICA_DIR")"
REPLICA_LOG="${REPLICA_LOG:-$PARENT_DIR/replica.log}"
STAGING_DIR="$REPLICA_DIR.new"     # pg_basebackup target; renamed when complete
LOCK_FILE="$REPLICA_DIR.lock"
MARKER=".commerce-gateway-replica" # marks a data dir this script created

# --- helpers -----------------------------------------------------------------

# Run a command as the postgres user from a directory it can read (pg_ctl and
# postgres fail if they cannot stat the current directory, e.g. under /root).
# fd 9 (our lock) is closed so the postmaster never inherits and holds it.
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@") 9>&-
    elif [[ "$(id -un)" == postgres ]]; then
        (cd / && "$@") 9>&-
    else
        die "run this as root or as the postgres user"
    fi
}

# Pick the PostgreSQL binaries: PG_BINDIR if set; else, for `start`, the
# primary's major version (the replica must match it) and for the other
# subcommands the data directory's; else the newest installed version.
resolve_bindir() {
    local prefer="$1" major=""
    [[ -n "${PG_BINDIR:-}" ]] && return 0
    if [[ "$prefer" == datadir && -r "$REPLICA_DIR/PG_VERSION" ]]; then
        major="$(cat "$REPLICA_DIR/PG_VERSION")"
    elif [[ "$prefer" == primary ]] && command -v psql >/dev/null; then
        local num
        num="$(psql -X -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$PRIMARY_USER" -d postgres \
            -tAc 'show server_version_num' 2>/dev/null || true)"
        [[ "$num" =~ ^[0-9]+$ ]] && major=$((num / 10000))
    fi
    if [[ -n "$major" && -x "/usr/lib/postgresql/$major/bin/pg_ctl" ]]; then
        PG_BINDIR="/usr/lib/postgresql/$major/bin"
        return 0
    fi
    local newest
    newest="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null \
        | grep -E '^[0-9]+$' | sort -n | tail -n1 || true)"
    [[ -n "$newest" && -x "/usr/lib/postgresql/$newest/bin/pg_ctl" ]] \
        || die "no PostgreSQL server binaries found under /usr/lib/postgresql/*/bin"
    PG_BINDIR="/usr/lib/postgresql/$newest/bin"
}

psql_primary() {
    "$PG_BINDIR/psql" -X -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$PRIMARY_USER" -d postgres -v ON_ERROR_STOP=1 -tA "$@"
}
psql_replica() {
    "$PG_BINDIR/psql" -X -q -h 127.0.0.1 -p "$REPLICA_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -tA "$@"
}

# PID of the replica's postmaster if it is really running, else nothing.
# A postmaster.pid whose PID is dead or belongs to another process (PID reuse
# after a SIGKILL or a reboot) does not count.
replica_pid() {
    local pidfile="$REPLICA_DIR/postmaster.pid" pid cwd
    [[ -r "$pidfile" ]] || return 0
    pid="$(head -n1 "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    [[ -d "/proc/$pid" ]] || return 0
    # The postmaster chdirs into its data directory.
    cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
    [[ "$cwd" == "$(readlink -f "$REPLICA_DIR")" ]] || return 0
    echo "$pid"
}

# Remove a postmaster.pid (and socket lock) left behind by a postmaster that is
# gone, so a reused PID cannot make PostgreSQL refuse to start.
clear_stale_locks() {
    local pidfile="$REPLICA_DIR/postmaster.pid"
    if [[ -e "$pidfile" && -z "$(replica_pid)" ]]; then
        log "removing stale $pidfile"
        rm -f "$pidfile"
    fi
    local sock_lock="/tmp/.s.PGSQL.$REPLICA_PORT.lock" lpid
    if [[ -e "$sock_lock" ]]; then
        lpid="$(head -n1 "$sock_lock" 2>/dev/null || true)"
        if ! [[ "$lpid" =~ ^[0-9]+$ ]] || [[ "$(cat "/proc/$lpid/comm" 2>/dev/null || true)" != postgres ]]; then
            log "removing stale $sock_lock"
            rm -f "$sock_lock" "/tmp/.s.PGSQL.$REPLICA_PORT"
        fi
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$REPLICA_PORT") 2>/dev/null
}

# Byte offset of the log where the current start attempt began, so that a
# failure shows this attempt's lines only.
LOG_OFFSET=0
log_tail() {
    log "last lines of $REPLICA_LOG (this attempt):"
    tail -c "+$((LOG_OFFSET + 1))" "$REPLICA_LOG" 2>/dev/null | tail -n 40 | sed 's/^/    /' >&2 || true
}

# May this script rm -rf "$1"? Only a missing or empty directory, or a data
# directory (guards against a mistyped REPLICA_DIR).
wipeable() {
    local dir="$1"
    [[ ! -e "$dir" ]] && return 0
    [[ -d "$dir" ]] || return 1
    [[ -e "$dir/$MARKER" || -e "$dir/PG_VERSION" || -z "$(ls -A "$dir")" ]]
}
safe_wipe() {
    wipeable "$1" || die "'$1' exists and does not look like a replica data directory; remove it yourself"
    rm -rf -- "$1"
}

# --- checks on the primary ---------------------------------------------------

primary_sysid() {
    psql_primary -c 'select system_identifier from pg_control_system()'
}

# Can we open a physical replication connection to the primary?
replication_allowed() {
    "$PG_BINDIR/psql" -X -q "host=$PRIMARY_HOST port=$PRIMARY_PORT user=$PRIMARY_USER dbname=postgres replication=true" \
        -tAc 'IDENTIFY_SYSTEM' >/dev/null 2>&1
}

# Make sure the primary is configured for, and allows, streaming replication
# from 127.0.0.1. Only edits pg_hba.conf when a replication connection fails.
check_primary_for_replication() {
    local wal_level senders
    wal_level="$(psql_primary -c 'show wal_level')"
    senders="$(psql_primary -c 'show max_wal_senders')"
    case "$wal_level" in
        replica | logical) ;;
        *) die "primary has wal_level=$wal_level; set wal_level=replica (needs a primary restart)" ;;
    esac
    ((senders > 0)) || die "primary has max_wal_senders=0; set it to at least 3 (needs a primary restart)"
    ((senders >= 3)) || log "warning: max_wal_senders=$senders; pg_basebackup -X stream plus a running replica need 3"
    (($(psql_primary -c 'show max_replication_slots') > 0)) \
        || die "primary has max_replication_slots=0; set it to at least 1 (needs a primary restart)"

    replication_allowed && return 0

    # A replication connection is refused: add a trust line for 127.0.0.1
    # (unless this script already did) and reload.
    local hba line="host replication all 127.0.0.1/32 trust"
    hba="$(psql_primary -c 'show hba_file')"
    [[ -f "$hba" ]] || die "primary's hba_file '$hba' is not on this machine"
    if grep -Eq '^[[:space:]]*host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust[[:space:]]*$' "$hba"; then
        log "$hba already has '$line'; reloading the primary"
    else
        log "adding '$line' to $hba"
        [[ -w "$hba" ]] || die "cannot write $hba (run as root)"
        # Insert it before the first rule so that no earlier line (a reject or
        # a password rule) takes precedence; rewrite in place to keep the
        # file's owner and mode. Works whether or not the file ends with a
        # newline (Debian's may not).
        local tmp
        tmp="$(mktemp)"
        awk -v l="# added by commerce-gateway scripts/replica.sh (local streaming replica)
$line" '
            !done && $0 !~ /^[[:space:]]*(#|$)/ { print l; done = 1 }
            { print }
            END { if (!done) print l }
        ' "$hba" >"$tmp"
        cat "$tmp" >"$hba"
        rm -f "$tmp"
    fi
    psql_primary -c 'select pg_reload_conf()' >/dev/null
    # The reload is asynchronous: poll briefly.
    local i
    for ((i = 0; i < 50; i++)); do
        replication_allowed && return 0
        sleep 0.1
    done
    psql_primary -c "select line_number, error from pg_hba_file_rules where error is not null" >&2 || true
    die "the primary still refuses replication connections from 127.0.0.1; check $hba"
}

# --- the replication slot on the primary -----------------------------------------

# The slot's wal_status ('reserved', 'extended', 'unreserved', 'lost'), or
# nothing when the slot does not exist.
slot_status() {
    psql_primary \
        -c "select coalesce(wal_status, 'unknown') from pg_replication_slots where slot_name = '$REPLICA_SLOT'"
}

# Drop the slot if it exists. A walsender may hold it for a moment after the
# replica stopped: wait up to 5 s for it to let go.
drop_slot() {
    local i state
    for ((i = 0; i < 50; i++)); do
        state="$(psql_primary \
            -c "select active from pg_replication_slots where slot_name = '$REPLICA_SLOT'")"
        case "$state" in
            "") return 0 ;;
            f)
                psql_primary -c "select pg_drop_replication_slot('$REPLICA_SLOT')" >/dev/null
                return 0 ;;
        esac
        sleep 0.1
    done
    die "replication slot $REPLICA_SLOT is in use by another walsender; cannot drop it"
}

# --- building the replica ------------------------------------------------------

# pg_basebackup into a staging directory, add the config files Debian keeps
# outside the data directory, then rename it into place.
build_replica() {
    log "building replica in $REPLICA_DIR from $PRIMARY_HOST:$PRIMARY_PORT"
    wipeable "$REPLICA_DIR" \
        || die "'$REPLICA_DIR' exists and does not look like a replica data directory; remove it yourself"
    check_primary_for_replication

    safe_wipe "$STAGING_DIR"
    drop_slot   # a leftover from an earlier build: pg_basebackup -C recreates it
    mkdir -p "$PARENT_DIR"
    install -d -m 700 -o postgres -g postgres "$STAGING_DIR"
    if ! as_pg "$PG_BINDIR/pg_basebackup" -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$PRIMARY_USER" \
        -D "$STAGING_DIR" -R -X stream -c fast -C -S "$REPLICA_SLOT"; then
        rm -rf -- "$STAGING_DIR"
        drop_slot || true
        die "pg_basebackup failed (is $PARENT_DIR reachable by the postgres user?)"
    fi

    # Hot standby needs these to be >= the primary's values: copy them.
    local settings
    settings="$(psql_primary -F ' = ' -c "
        select name, setting from pg_settings
        where name in ('max_connections', 'max_worker_processes', 'max_wal_senders',
                       'max_prepared_transactions', 'max_locks_per_transaction')
        order by name")"
    local spl
    spl="$(psql_primary -c 'show shared_preload_libraries')"

    as_pg tee "$STAGING_DIR/postgresql.conf" >/dev/null <<EOF
# Written by commerce-gateway scripts/replica.sh: a local streaming replica.
listen_addresses = '127.0.0.1'
port = $REPLICA_PORT
unix_socket_directories = '/tmp'
cluster_name = 'commerce-gateway-replica'
hot_standby = on
# hot_standby_feedback stays off: with a slot, a stopped replica would pin the
# primary's xmin (blocking VACUUM) until it came back.
shared_preload_libraries = '$spl'
# Copied from the primary (a hot standby needs values >= the primary's):
$settings
EOF
    as_pg tee "$STAGING_DIR/pg_hba.conf" >/dev/null <<'EOF'
# Written by commerce-gateway scripts/replica.sh
local all         all                trust
host  all         all  127.0.0.1/32  trust
host  all         all  ::1/128       trust
host  replication all  127.0.0.1/32  trust
EOF
    as_pg touch "$STAGING_DIR/pg_ident.conf" "$STAGING_DIR/$MARKER"
    [[ -e "$STAGING_DIR/standby.signal" ]] || die "pg_basebackup -R did not write standby.signal"

    safe_wipe "$REPLICA_DIR"
    mv -- "$STAGING_DIR" "$REPLICA_DIR"
}

# Why an existing data directory cannot be reused (prints nothing if it can).
unusable_reason() {
    local sysid="$1" want_major="$2"
    [[ -f "$REPLICA_DIR/PG_VERSION" ]] || { echo "no PG_VERSION"; return; }
    [[ -f "$REPLICA_DIR/postgresql.conf" ]] || { echo "no postgresql.conf"; return; }
    [[ -e "$REPLICA_DIR/standby.signal" ]] || { echo "no standby.signal (promoted?)"; return; }
    [[ "$(cat "$REPLICA_DIR/PG_VERSION")" == "$want_major" ]] \
        || { echo "made by PostgreSQL $(cat "$REPLICA_DIR/PG_VERSION"), primary is $want_major"; return; }
    grep -Eq "^primary_slot_name = '$REPLICA_SLOT'\$" "$REPLICA_DIR/postgresql.auto.conf" 2>/dev/null \
        || { echo "not set up with replication slot $REPLICA_SLOT"; return; }
    case "$(slot_status)" in
        "") echo "slot $REPLICA_SLOT is missing on the primary"; return ;;
        lost) echo "slot $REPLICA_SLOT has lost WAL the replica needs"; return ;;
    esac
    local have
    have="$(as_pg "$PG_BINDIR/pg_controldata" -D "$REPLICA_DIR" 2>/dev/null \
        | sed -n 's/^Database system identifier:[[:space:]]*//p')" || true
    if [[ -z "$have" ]]; then
        echo "pg_controldata cannot read it"
    elif [[ "$have" != "$sysid" ]]; then
        echo "made from another primary (system id $have, primary $sysid)"
    fi
}

# --- starting and waiting ----------------------------------------------------

# Is the replica answering, in recovery, and streaming from the primary?
replica_ready() {
    local out
    out="$(psql_replica -F '|' -c "
        select pg_is_in_recovery(),
               coalesce((select status from pg_stat_wal_receiver), 'none')" 2>/dev/null)" || return 1
    [[ "$out" == "t|streaming" ]]
}

# Wait up to $1 seconds for replica_ready; 0 on success.
wait_ready() {
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        replica_ready && return 0
        # Give up early if the postmaster died.
        [[ -n "$(replica_pid)" ]] || return 1
        sleep 0.1
    done
    replica_ready
}

# Start the existing data directory and wait for it; 0 on success. On failure
# the server is stopped again and the log tail printed.
start_and_wait() {
    clear_stale_locks
    if port_in_use; then
        die "port $REPLICA_PORT on 127.0.0.1 is used by something else; set REPLICA_PORT or free it"
    fi
    # Keep the log bounded; pg_ctl opens it as postgres: make sure it may.
    if [[ -f "$REPLICA_LOG" ]] && (($(stat -c %s "$REPLICA_LOG") > 10 * 1024 * 1024)); then
        mv -f "$REPLICA_LOG" "$REPLICA_LOG.old"
    fi
    touch "$REPLICA_LOG"
    LOG_OFFSET="$(stat -c %s "$REPLICA_LOG")"
    [[ $EUID -ne 0 ]] || chown postgres:postgres "$REPLICA_LOG"
    if as_pg "$PG_BINDIR/pg_ctl" -D "$REPLICA_DIR" -w -t "$REPLICA_TIMEOUT" -s \
        -o "-p $REPLICA_PORT -k /tmp -c listen_addresses=127.0.0.1" -l "$REPLICA_LOG" start \
        && wait_ready "$REPLICA_TIMEOUT"; then
        return 0
    fi
    log "replica did not come up in recovery and streaming (waited at most ${REPLICA_TIMEOUT}s)"
    log_tail
    stop_server immediate || true
    return 1
}

stop_server() {
    local mode="$1"
    if [[ -z "$(replica_pid)" ]]; then
        clear_stale_locks
        return 0
    fi
    as_pg "$PG_BINDIR/pg_ctl" -D "$REPLICA_DIR" -m "$mode" -w -t 60 -s stop
}

# --- subcommands ---------------------------------------------------------------

cmd_start() {
    resolve_bindir primary
    if [[ -n "$(replica_pid)" ]]; then
        # Already running: done if it is healthy (allow a just-started one a
        # few seconds); otherwise restart it through the normal path below.
        if wait_ready 5; then
            log "already running on 127.0.0.1:$REPLICA_PORT"
            return 0
        fi
        log "running but not streaming; restarting it"
        log_tail
        stop_server immediate
    fi

    "$PG_BINDIR/pg_isready" -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -t 5 \
        || die "primary $PRIMARY_HOST:$PRIMARY_PORT is not accepting connections"
    local sysid major reason
    sysid="$(primary_sysid)"
    major=$(($(psql_primary -c 'show server_version_num') / 10000))

    if [[ -d "$REPLICA_DIR" ]]; then
        reason="$(unusable_reason "$sysid" "$major")"
        if [[ -z "$reason" ]]; then
            start_and_wait && { log "started on 127.0.0.1:$REPLICA_PORT"; return 0; }
            reason="it failed to start"
        fi
        log "existing $REPLICA_DIR is unusable ($reason): rebuilding it"
    fi
    build_replica
    start_and_wait || die "fresh replica failed to start; see $REPLICA_LOG"
    log "built and started on 127.0.0.1:$REPLICA_PORT"
}

cmd_stop() {
    local mode="$1"
    [[ -d "$REPLICA_DIR" ]] || { log "no replica at $REPLICA_DIR"; return 0; }
    resolve_bindir datadir
    if [[ -z "$(replica_pid)" ]]; then
        clear_stale_locks
        log "not running"
        return 0
    fi
    stop_server "$mode"
    log "stopped (-m $mode)"
}

cmd_destroy() {
    resolve_bindir datadir
    if [[ -d "$REPLICA_DIR" ]]; then
        stop_server immediate
        wipeable "$REPLICA_DIR" || die "'$REPLICA_DIR' does not look like a replica data directory; not removing it"
    fi
    if "$PG_BINDIR/pg_isready" -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -t 5; then
        drop_slot
    else
        log "warning: primary is down; slot $REPLICA_SLOT (if any) was not dropped"
    fi
    rm -rf -- "$REPLICA_DIR" "$STAGING_DIR"
    log "destroyed $REPLICA_DIR and slot $REPLICA_SLOT"
}

cmd_status() {
    if [[ ! -d "$REPLICA_DIR" ]]; then
        echo "replica: not created ($REPLICA_DIR)"
        return 3
    fi
    resolve_bindir datadir
    local pid
    pid="$(replica_pid)"
    if [[ -z "$pid" ]]; then
        echo "replica: stopped (data dir $REPLICA_DIR, port $REPLICA_PORT)"
        return 3
    fi
    local info
    if ! info="$(psql_replica -F ' ' -c "
        select 'in_recovery=' || pg_is_in_recovery(),
               'receiver=' || coalesce((select status from pg_stat_wal_receiver), 'none'),
               'last_replayed_xact_age=' || coalesce(round(extract(epoch from now() - pg_last_xact_replay_timestamp()) * 1000)::text || 'ms', 'n/a'),
               'replay_lsn=' || coalesce(pg_last_wal_replay_lsn()::text, 'n/a')" 2>&1)"; then
        echo "replica: running (pid $pid) but not answering on 127.0.0.1:$REPLICA_PORT: $info"
        return 1
    fi
    echo "replica: running (pid $pid) on 127.0.0.1:$REPLICA_PORT, data dir $REPLICA_DIR, $info"
    [[ "$info" == in_recovery=true* ]] || return 1
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

[[ $# -eq 1 ]] || usage
case "$1" in
    start | stop | kill | status | destroy) ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac

# Serialise invocations (parallel tests may call stop/kill/start at once).
mkdir -p "$PARENT_DIR"
exec 9>>"$LOCK_FILE"
flock -w 120 9 || die "timed out waiting for $LOCK_FILE"

case "$1" in
    start) cmd_start ;;
    stop) cmd_stop fast ;;
    kill) cmd_stop immediate ;;
    status) cmd_status ;;
    destroy) cmd_destroy ;;
esac
