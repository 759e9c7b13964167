# shellcheck shell=bash
# shellcheck disable=SC2034 # the settings below are used by the scripts that source this file
# bench/lib.sh — the set-up the bench scripts share (run.sh, checkout.sh, cache.sh,
# observability.sh, ratelimit.sh). Sourced, never run:
#
#   BENCH_LOG_TAG="cache-bench"                       # prefix of log lines (default "bench")
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Sourcing it sets the common settings below and installs the exit trap that stops every
# process started through it (by pid). Each script keeps its own settings, ports, gateway
# environment, cases and report. See bench/README.md.

# --- common settings -------------------------------------------------------------------

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
OUT="$BENCH_DIR/out"
BIN="${GATEWAY_BIN:-$ROOT/target/release/commerce-gateway}"
PRODUCTS="${BENCH_PRODUCTS:-10000}"
PG=(-X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres) # psql as the admin
PG_URL="postgres://postgres@127.0.0.1:5432"                      # + /DBNAME
Q1_HANDLE=apparel                                               # storefront Q1's collection
WRK_THREADS=2
WRK_TIMEOUT=10s

# --- logging ---------------------------------------------------------------------------

# bench_log MESSAGE...: one time-stamped line on stderr, "[$BENCH_LOG_TAG HH:MM:SS] ...".
bench_log() { printf '[%s %s] %s\n' "${BENCH_LOG_TAG:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }

# bench_die MESSAGE...: logs "ERROR: MESSAGE" and exits 1 (the exit trap cleans up).
bench_die() { bench_log "ERROR: $*"; exit 1; }

# --- processes we started: stopped on exit, by pid -------------------------------------

BENCH_PIDS=()             # every process started by bench_spawn / start_gateway, still running
BENCH_EXIT_HOOKS=()       # functions bench_cleanup runs after stopping them
BENCH_LAST_PID=""         # the pid of the last process started
BENCH_SHELL_PID=$BASHPID  # the script's own shell, which owns them

# bench_track_pid PID: stop PID on exit.
bench_track_pid() { BENCH_PIDS+=("$1"); }

# bench_spawn LOGFILE COMMAND...: runs COMMAND in the background, stdout and stderr into
# LOGFILE, stopped on exit. Sets BENCH_LAST_PID (COMMAND's own pid: env/nice exec it).
bench_spawn() {
    local logfile=$1
    shift
    "$@" >"$logfile" 2>&1 &
    BENCH_LAST_PID=$!
    bench_track_pid "$BENCH_LAST_PID"
}

# bench_stop_pids PID...: SIGTERM to all of them, then waits for each; one still running
# after 10 s gets SIGKILL.
bench_stop_pids() {
    local pid i
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            bench_log "pid $pid did not stop on SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

# bench_stop_pid PID: stops one process now (as above) and forgets it.
bench_stop_pid() {
    local pid=$1 keep=() p
    bench_stop_pids "$pid"
    for p in "${BENCH_PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
}

# bench_at_exit FUNCTION: runs FUNCTION on exit, after the processes are stopped (for what
# a script cleans up itself: a daemon's pid file, a scratch database).
bench_at_exit() { BENCH_EXIT_HOOKS+=("$1"); }

# bench_cleanup: the EXIT trap: stops every tracked process, runs the exit hooks, and exits
# with the script's status. Only in the script's own shell: a child just forked by `&`
# still carries these traps until it execs, and a signal in that moment must not make it
# stop the others.
bench_cleanup() {
    local rc=$? hook
    [[ "$BASHPID" == "$BENCH_SHELL_PID" ]] || exit "$rc"
    bench_stop_pids "${BENCH_PIDS[@]}"
    for hook in "${BENCH_EXIT_HOOKS[@]}"; do "$hook" || true; done
    exit "$rc"
}

# bench_interrupted: the INT and TERM trap: exits 130 (the EXIT trap then cleans up).
bench_interrupted() {
    if [[ "$BASHPID" == "$BENCH_SHELL_PID" ]]; then bench_log "interrupted"; fi
    exit 130
}
trap bench_cleanup EXIT
trap bench_interrupted INT TERM

# --- prerequisites ---------------------------------------------------------------------

# require_cmd COMMAND [HINT]: dies unless COMMAND is on the PATH.
require_cmd() {
    command -v "$1" >/dev/null || bench_die "$1 is required${2:+ ($2)}"
}

# require_gateway_bin: dies unless $BIN (GATEWAY_BIN, default the release build) exists.
require_gateway_bin() {
    [[ -x "$BIN" ]] || bench_die "no gateway binary at $BIN (build it: cargo build --release)"
}

# require_quiet_machine: dies while a cargo process runs (a build competes for the cores
# and spoils the numbers), unless BENCH_IGNORE_CARGO is set.
require_quiet_machine() {
    if pgrep -x cargo >/dev/null && [[ -z "${BENCH_IGNORE_CARGO:-}" ]]; then
        bench_die "a cargo process is running (a build competes for the cores); wait for it or set BENCH_IGNORE_CARGO=1 to run anyway"
    fi
}

# tool_path TOOL: prints TOOL's path (on the PATH, or in /usr/sbin); fails without it.
tool_path() {
    if command -v "$1"; then return 0; fi
    [[ -x "/usr/sbin/$1" ]] && echo "/usr/sbin/$1"
}

# ensure_tool TOOL: installs the Debian package TOOL (wrk, nginx) with apt-get when it is
# missing; when the install fails, refreshes the package lists and tries again.
ensure_tool() {
    local tool=$1
    tool_path "$tool" >/dev/null && return 0
    bench_log "installing $tool (apt-get)"
    if ! DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$tool" >/dev/null; then
        timeout 600 apt-get update -qq || bench_die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$tool" >/dev/null ||
            bench_die "apt-get install $tool failed"
    fi
    tool_path "$tool" >/dev/null || bench_die "$tool did not install"
}

# --- the database ----------------------------------------------------------------------

# drop_db NAME: drops the database NAME (connections closed), quietly when it is missing.
drop_db() {
    PGOPTIONS='-c client_min_messages=warning' psql "${PG[@]}" -d postgres \
        -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
}

# seed_db NAME N [LOGFILE]: drops NAME and lets `$BIN seed` create, migrate and seed it
# with N products. With LOGFILE its output goes there (shown when it fails); without,
# stdout is discarded. Sets SEED_WALL_S (wall seconds) and SEED_REPORT (its "seeded" line).
seed_db() {
    local name=$1 n=$2 logfile=${3:-} start end
    drop_db "$name"
    bench_log "seeding $n products into $name"
    start=$(date +%s.%N)
    if [[ -n "$logfile" ]]; then
        if ! DATABASE_URL="$PG_URL/$name" RUST_LOG=warn \
            timeout 3600 "$BIN" seed --products "$n" >"$logfile" 2>&1; then
            cat "$logfile" >&2
            bench_die "seeding $name failed (log: $logfile)"
        fi
        SEED_REPORT=$(grep -E '^seeded ' "$logfile" | tail -n1 || true)
    else
        DATABASE_URL="$PG_URL/$name" RUST_LOG=warn \
            timeout 3600 "$BIN" seed --products "$n" >/dev/null || bench_die "seeding $name failed"
        SEED_REPORT=""
    fi
    end=$(date +%s.%N)
    SEED_WALL_S=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')
    bench_log "seeded in ${SEED_WALL_S}s wall${SEED_REPORT:+ ($SEED_REPORT)}"
}

# ensure_bench_db NAME: seeds NAME with $PRODUCTS products when it is missing or has no
# products (an existing one is reused as it is), then applies the migrations this binary
# needs (an older bench database).
ensure_bench_db() {
    local name=$1 count
    count=$(psql "${PG[@]}" -d "$name" -Atc "SELECT count(*) FROM products" 2>/dev/null || echo 0)
    if [[ "$count" == 0 ]]; then
        seed_db "$name" "$PRODUCTS"
    fi
    DATABASE_URL="$PG_URL/$name" RUST_LOG=warn "$BIN" migrate >/dev/null
}

# --- servers ---------------------------------------------------------------------------

# wait_ready WHAT PID LOGFILE PROBE...: runs PROBE... every 0.1 s until it succeeds; dies
# (with the end of LOGFILE) when PID exits first or after 60 s.
wait_ready() {
    local what=$1 pid=$2 logfile=$3 i
    shift 3
    for ((i = 0; i < 600; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$logfile" >&2 || true
            bench_die "$what exited during start-up (log: $logfile)"
        fi
        "$@" && return 0
        sleep 0.1
    done
    tail -n 30 "$logfile" >&2 || true
    bench_die "$what did not become ready within 60 s (log: $logfile)"
}

# graphql_answers PORT: probe: POST { __typename } to 127.0.0.1:PORT/graphql answers 200
# (any GraphQL server: bench/run.sh's PostGraphile).
graphql_answers() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Content-Type: application/json' \
        --data '{"query":"{ __typename }"}' "http://127.0.0.1:$1/graphql" || true)
    [[ "$code" == 200 ]]
}

# prepare_checkout_db DB PAIRS TSV: gives every variant of DB ample stock (a checkout
# benchmark measures checkout, not stock-outs), makes the table bench_pairs of PAIRS pairs
# of sellable DENY variants (pgbench's script reads it) and writes them to TSV as the
# global IDs examples/checkout_load takes.
prepare_checkout_db() {
    local db=$1 pairs=$2 tsv=$3
    # Plenty of stock everywhere: the benchmark measures checkout, not stock-outs.
    psql "${PG[@]}" -d "$db" <<SQL
UPDATE inventory_levels SET on_hand = 1000000, reserved = 0;
CREATE TABLE bench_pairs AS
WITH sellable AS (
    SELECT v.id, row_number() OVER (ORDER BY v.id) AS k
    FROM product_variants v JOIN products p ON p.id = v.product_id
    JOIN variant_prices vp ON vp.variant_id = v.id AND vp.currency = 'USD'
    -- DENY variants: a CONTINUE one adds a statement (its empty level) the pgbench
    -- script would have to mirror per pair.
    WHERE p.status = 'ACTIVE' AND p.published_at <= now() AND v.inventory_policy = 'DENY'
)
SELECT a.k AS n, a.id AS v1, b.id AS v2
FROM sellable a JOIN sellable b ON b.k = a.k + $pairs
WHERE a.k <= $pairs;
CREATE UNIQUE INDEX ON bench_pairs (n);
VACUUM ANALYZE;
SQL
    psql "${PG[@]}" -d "$db" -Atc "SELECT 'gid://shopify/ProductVariant/' || v1 || E'\t' || 'gid://shopify/ProductVariant/' || v2 FROM bench_pairs ORDER BY n" >"$tsv"
    [[ $(wc -l <"$tsv") -eq $pairs ]] || bench_die "not enough sellable variants for $pairs pairs"
}

# gateway_ready PORT [CACHE]: probe: the gateway's /readyz answers 2xx (it reaches the
# database) and, with CACHE=true, reports its response cache listening.
gateway_ready() {
    local body
    body=$(curl -sf --max-time 2 "http://127.0.0.1:$1/readyz") || return 1
    [[ "${2:-false}" != true ]] || jq -e '.cache.listening' >/dev/null <<<"$body"
}

# start_gateway NAME PORT [VAR=value ...]: starts `$BIN serve` on 127.0.0.1:PORT with
# AUTO_SEED_PRODUCTS=0 RUST_LOG=warn and then the given environment (which may override
# those; pass DATABASE_URL), output in $OUT/NAME.log, stopped on exit; returns once
# gateway_ready (with CACHE_ENABLED=true among the variables: once the cache listens too).
# Sets BENCH_LAST_PID.
start_gateway() {
    local name=$1 port=$2 cache=false arg
    shift 2
    for arg in "$@"; do
        if [[ "$arg" == CACHE_ENABLED=true ]]; then cache=true; fi
    done
    bench_spawn "$OUT/$name.log" env LISTEN_ADDR="127.0.0.1:$port" AUTO_SEED_PRODUCTS=0 RUST_LOG=warn \
        "$@" "$BIN" serve
    wait_ready "gateway $name (127.0.0.1:$port)" "$BENCH_LAST_PID" "$OUT/$name.log" \
        gateway_ready "$port" "$cache"
}

# --- load ------------------------------------------------------------------------------

# write_q1_body FILE: the request body of storefront Q1 (queries/q1_gateway.graphql on the
# collection $Q1_HANDLE), as bench/run.sh sends it, for lua/graphql.lua's BENCH_BODY_FILE.
write_q1_body() {
    python3 "$BENCH_DIR/bench.py" body "$BENCH_DIR/queries/q1_gateway.graphql" \
        "$(jq -nc --arg h "$Q1_HANDLE" '{handle: $h}')" "$1"
}

# run_wrk TXT CONNECTIONS DURATION URL [VAR=value ...]: one run of
# `wrk -t$WRK_THREADS -cCONNECTIONS -dDURATION --timeout $WRK_TIMEOUT --latency` with
# lua/graphql.lua (configured by the variables: BENCH_BODY_FILE, BENCH_METHOD, ...), its
# output in TXT. Sets WRK_RESULT to the JSON of the BENCH_RESULT line graphql.lua prints;
# dies (showing TXT) when wrk fails or prints none.
run_wrk() {
    local txt=$1 conns=$2 duration=$3 url=$4
    shift 4
    if ! env "$@" timeout 120 \
        wrk -t"$WRK_THREADS" -c"$conns" -d"$duration" --timeout "$WRK_TIMEOUT" --latency \
        -s "$BENCH_DIR/lua/graphql.lua" "$url" >"$txt" 2>&1; then
        cat "$txt" >&2
        bench_die "wrk failed (output: $txt)"
    fi
    WRK_RESULT=$(grep '^BENCH_RESULT ' "$txt" | tail -n1 | cut -d' ' -f2- || true)
    [[ -n "$WRK_RESULT" ]] || { cat "$txt" >&2; bench_die "no BENCH_RESULT from wrk (output: $txt)"; }
}

# wrk_case NAME URL CONNECTIONS [VAR=value ...]: one case: a $WARMUP warm-up, then a
# $DURATION run, into $RUNS/NAME.warmup.txt and $RUNS/NAME.run.txt; the run's result in
# $RUNS/NAME.json, and a one-line summary on stderr. WARMUP, DURATION, RUNS: the script's.
# shellcheck disable=SC2153,SC2154
wrk_case() {
    local name=$1 url=$2 conns=$3
    shift 3
    run_wrk "$RUNS/$name.warmup.txt" "$conns" "$WARMUP" "$url" "$@"
    run_wrk "$RUNS/$name.run.txt" "$conns" "$DURATION" "$url" "$@"
    printf '%s\n' "$WRK_RESULT" >"$RUNS/$name.json"
    jq -r --arg n "$name" '"\($n): \(.rps|floor) req/s, p99 \(.p99_us/1000) ms, non-2xx \(.non2xx), errors \(.graphql_errors)"' \
        "$RUNS/$name.json" >&2
}

# fresh_runs_dir DIR: creates DIR and removes the previous run's results (DIR/*.json).
fresh_runs_dir() {
    mkdir -p "$1"
    rm -f "$1"/*.json
}
