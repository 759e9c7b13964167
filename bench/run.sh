#!/usr/bin/env bash
# bench/run.sh — throughput, latency, statements per request and memory of the
# commerce-gateway release binary, with PostGraphile v4 over the same database as the
# baseline. Not part of CI. See bench/README.md.
#
# Usage:
#   bench/run.sh                  the full benchmark (about 3 minutes)
#   bench/run.sh --seed-only N    time `commerce-gateway seed --products N` into a scratch
#                                 database (cg_bench_seed), dropped afterwards
#
# Needs: the release binary (cargo build --release; GATEWAY_BIN overrides the path),
# PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth), node/npm, python3, curl, jq.
# Installs wrk (apt-get) and bench/node_modules (npm) when missing.
#
# Environment (all optional):
#   GATEWAY_BIN           gateway binary        (default target/release/commerce-gateway)
#   BENCH_PRODUCTS        products to seed      (default 10000)
#   BENCH_DURATION        wrk duration per case (default 15s)
#   BENCH_Q1_ROUNDS       extra Q1 rounds after the main runs: gateway and PostGraphile
#                         alternate in short windows (BENCH_ROUND_DURATION, default 5s) and
#                         the median of the per-round ratios is reported (default 6; 0 = off).
#                         One noisy window then moves one round, not the verdict.
#   BENCH_WARMUP          wrk warm-up per case  (default 5s)
#   BENCH_POOL_SIZE       DB pool of both servers (default 16)
#   BENCH_IGNORE_CARGO=1  run even while a cargo process is running (results will be noisy)
#
# Everything listens on 127.0.0.1 only: gateway 18181, PostGraphile 18282, and for the
# statement counts a QUERY_STATS gateway on 18183 and a query-logging PostGraphile on 18283.
# Every process started here is stopped on exit (by pid). Results: bench/out/results.md.
set -euo pipefail

# bench/lib.sh: BENCH_DIR, ROOT, OUT, BIN (GATEWAY_BIN), PRODUCTS (BENCH_PRODUCTS), PG, PG_URL,
# Q1_HANDLE; logging, the exit trap, the cargo guard, wrk, seeding, servers, wrk runs.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FIXTURES="$ROOT/tests/fixtures/nextjs-commerce"
QUERIES="$BENCH_DIR/queries"

DB_NAME=cg_bench
DB_URL="$PG_URL/$DB_NAME"
SEED_DB_NAME=cg_bench_seed

DURATION="${BENCH_DURATION:-15s}"
Q1_ROUNDS="${BENCH_Q1_ROUNDS:-6}"
ROUND_DURATION="${BENCH_ROUND_DURATION:-5s}"
WARMUP="${BENCH_WARMUP:-5s}"
POOL="${BENCH_POOL_SIZE:-16}"
CONNECTIONS=32

GW_PORT=18181
PGL_PORT=18282
GW_STATS_PORT=18183
PGL_DEBUG_PORT=18283

export PGCONNECT_TIMEOUT=5
unset PGSERVICE PGDATABASE PGOPTIONS PGHOST PGPORT PGUSER || true

# --seed-only's scratch database: dropped on exit too.
SCRATCH_DB=""
drop_scratch_db() {
    if [[ -n "$SCRATCH_DB" ]]; then drop_db "$SCRATCH_DB" 2>/dev/null || true; fi
}
bench_at_exit drop_scratch_db

# --- prerequisites -----------------------------------------------------------------------

check_binary() {
    require_gateway_bin
    require_quiet_machine
}

ensure_node_deps() {
    if [[ -f "$BENCH_DIR/node_modules/postgraphile/cli.js" &&
        -f "$BENCH_DIR/node_modules/postgraphile-plugin-connection-filter/package.json" ]]; then
        return 0
    fi
    bench_log "installing PostGraphile (npm)"
    if [[ -f "$BENCH_DIR/package-lock.json" ]]; then
        timeout 600 npm ci --prefix "$BENCH_DIR" --no-audit --no-fund >/dev/null
    else
        timeout 600 npm install --prefix "$BENCH_DIR" --no-audit --no-fund >/dev/null
    fi
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

check_ports() {
    local port
    for port in "$@"; do
        port_free "$port" || bench_die "127.0.0.1:$port is already in use (a previous run still going?)"
    done
}

# --- database ---------------------------------------------------------------------------

sql() { psql "${PG[@]}" -d "$DB_NAME" -Atc "$1"; }

# --- servers ----------------------------------------------------------------------------

# start_bench_gateway NAME PORT QUERY_STATS -> BENCH_LAST_PID (log: $OUT/NAME.log)
start_bench_gateway() {
    # Uncached and unthrottled: the goal compares the database path, and wrk is one
    # client that the default per-address limit would throttle.
    start_gateway "$1" "$2" DATABASE_URL="$DB_URL" CACHE_ENABLED=false RATE_LIMIT_ENABLED=false \
        QUERY_STATS="$3" DATABASE_POOL_SIZE="$POOL" SHUTDOWN_GRACE_MS=2000
}

# start_postgraphile PORT LOGFILE [VAR=value ...] -> BENCH_LAST_PID
start_postgraphile() {
    local port=$1 logfile=$2
    shift 2
    # The CLI reads bench/postgraphile/.postgraphilerc.js from its working directory.
    bench_spawn "$logfile" env -C "$BENCH_DIR/postgraphile" NODE_ENV=production "$@" \
        node "$BENCH_DIR/node_modules/postgraphile/cli.js" \
        -c "$DB_URL" -s public --host 127.0.0.1 --port "$port" --disable-graphiql \
        --disable-query-log --max-pool-size "$POOL" \
        --append-plugins postgraphile-plugin-connection-filter
    wait_ready "PostGraphile (port $port)" "$BENCH_LAST_PID" "$logfile" graphql_answers "$port"
}

proc_kb() { # pid field -> kB
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# post PORT CASE OUTFILE -> prints the HTTP status
post() {
    curl -sS -o "$3" -w '%{http_code}' --max-time 60 -H 'Content-Type: application/json' \
        --data-binary @"$OUT/bodies/$2.json" "http://127.0.0.1:$1/graphql"
}

port_of() { [[ "$1" == *_gateway ]] && echo "$GW_PORT" || echo "$PGL_PORT"; }

verify_case() { # case -> fails loudly on HTTP != 200, GraphQL errors or missing data
    local case=$1 code
    code=$(post "$(port_of "$case")" "$case" "$OUT/responses/$case.json")
    python3 "$BENCH_DIR/bench.py" verify "$case" "$OUT/responses/$case.json" "$code" >&2 ||
        bench_die "verification of $case failed (response: $OUT/responses/$case.json)"
}

# run_case CASE DURATION KIND(warmup|run|round): wrk into $OUT/wrk-CASE.KIND.txt; the
# result of a run in $OUT/runs/CASE.json, of a round appended to $OUT/runs/CASE.rounds.jsonl.
run_case() {
    local case=$1 duration=$2 kind=$3 json_line
    run_wrk "$OUT/wrk-$case.$kind.txt" "$CONNECTIONS" "$duration" \
        "http://127.0.0.1:$(port_of "$case")/graphql" BENCH_BODY_FILE="$OUT/bodies/$case.json"
    json_line=$WRK_RESULT
    if [[ "$kind" == run ]]; then
        printf '%s\n' "$json_line" >"$OUT/runs/$case.json"
    elif [[ "$kind" == round ]]; then
        printf '%s\n' "$json_line" >>"$OUT/runs/$case.rounds.jsonl"
    fi
    python3 - "$case" "$kind" "$json_line" <<'EOF' >&2
import json, sys
case, kind, r = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
bad = r["non2xx"] + r["graphql_errors"] + r["socket_connect"] + r["socket_read"] + r["socket_write"] + r["socket_timeout"]
print(f"    {kind:6} {case:18} {r['rps']:9.1f} req/s  p50 {r['p50_us']/1000:7.2f} ms  p99 {r['p99_us']/1000:7.2f} ms"
      f"  non-2xx {r['non2xx']}  errors {r['graphql_errors']}  socket {bad - r['non2xx'] - r['graphql_errors']}")
if bad:
    print(f"    !!! {case}: first bad response: {r['first_bad']}")
EOF
}

# --- seed timing only -------------------------------------------------------------------

seed_only() {
    local n=$1
    [[ "$n" =~ ^[0-9]+$ ]] || bench_die "--seed-only needs a product count"
    check_binary
    require_cmd psql
    require_cmd python3
    mkdir -p "$OUT"
    SCRATCH_DB="$SEED_DB_NAME"
    local t0=$SECONDS
    seed_db "$SEED_DB_NAME" "$n" "$OUT/seed-$n.log"
    local size
    size=$(psql "${PG[@]}" -d postgres -Atc "SELECT pg_size_pretty(pg_database_size('$SEED_DB_NAME'))")
    drop_db "$SEED_DB_NAME"
    SCRATCH_DB=""
    {
        echo "# Seed timing — $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        echo "- \`commerce-gateway seed --products $n\` (release, $BIN) into a new database (create + migrate + seed + ANALYZE):"
        echo "  **${SEED_WALL_S} s** wall; the binary's own report: \`$SEED_REPORT\`"
        echo "- Database size after seeding: $size (database dropped afterwards)"
        echo "- Machine: $(nproc) CPU(s); $(psql "${PG[@]}" -d postgres -Atc 'SHOW server_version') PostgreSQL on 127.0.0.1"
        echo "- Took $((SECONDS - t0)) s in all"
    } | tee "$OUT/seed-$n.md"
}

# --- the full benchmark -----------------------------------------------------------------

full_run() {
    local started=$SECONDS
    check_binary
    require_cmd psql
    require_cmd python3
    require_cmd curl
    require_cmd jq
    require_cmd node
    require_cmd npm
    ensure_tool wrk
    ensure_node_deps
    check_ports "$GW_PORT" "$PGL_PORT" "$GW_STATS_PORT" "$PGL_DEBUG_PORT"
    rm -rf "$OUT/runs" "$OUT/responses" "$OUT/bodies" "$OUT"/wrk-*.txt
    mkdir -p "$OUT/runs" "$OUT/responses" "$OUT/bodies"

    seed_db "$DB_NAME" "$PRODUCTS" "$OUT/seed.log"

    # Q2's product: a visible product with several variants and images.
    local q2_handle
    q2_handle=$(sql "SELECT p.handle FROM products p
        WHERE p.status = 'ACTIVE' AND p.published_at <= now()
          AND (SELECT count(*) FROM product_variants v WHERE v.product_id = p.id) >= 6
          AND (SELECT count(*) FROM product_images i WHERE i.product_id = p.id) >= 3
        ORDER BY p.id LIMIT 1")
    [[ -n "$q2_handle" ]] || bench_die "no product for Q2 found"
    # How many hidden (draft) products sit among the collection's first positions: why the
    # PostGraphile query has to filter on the product's status like the gateway does.
    local q1_hidden
    q1_hidden=$(sql "WITH c AS (SELECT cp.position, p.status = 'ACTIVE' AND p.published_at <= now() AS visible
                     FROM collection_products cp JOIN collections col ON col.id = cp.collection_id
                     JOIN products p ON p.id = cp.product_id WHERE col.handle = '$Q1_HANDLE'),
                  cut AS (SELECT position FROM c WHERE visible ORDER BY position OFFSET 23 LIMIT 1)
                  SELECT count(*) FROM c, cut WHERE NOT c.visible AND c.position < cut.position")
    bench_log "Q1 collection '$Q1_HANDLE' (hidden products among its first 24 visible: $q1_hidden), Q2 product '$q2_handle'"

    # Request bodies, built from the .graphql documents (fixtures verbatim for Q2/Q3 gateway).
    local now
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    body() { python3 "$BENCH_DIR/bench.py" body "$2" "$3" "$OUT/bodies/$1.json"; }
    body q1_gateway "$QUERIES/q1_gateway.graphql" "$(jq -nc --arg h "$Q1_HANDLE" '{handle: $h}')"
    body q1_postgraphile "$QUERIES/q1_postgraphile.graphql" "$(jq -nc --arg h "$Q1_HANDLE" --arg now "$now" '{handle: $h, now: $now}')"
    body q2_gateway "$FIXTURES/getProduct.graphql" "$(jq -nc --arg h "$q2_handle" '{handle: $h}')"
    body q2_postgraphile "$QUERIES/q2_postgraphile.graphql" "$(jq -nc --arg h "$q2_handle" '{handle: $h}')"
    body q3_gateway "$FIXTURES/getProducts.graphql" '{}'
    body q3_postgraphile "$QUERIES/q3_postgraphile.graphql" "$(jq -nc --arg now "$now" '{now: $now}')"
    local cases=(q1_gateway q1_postgraphile q2_gateway q2_postgraphile q3_gateway q3_postgraphile)

    # Statements per request: a separate gateway with QUERY_STATS=true, one request per case
    # (sent twice; the second is reported and must equal the first).
    bench_log "statements per request (gateway with QUERY_STATS=true on :$GW_STATS_PORT)"
    start_bench_gateway gateway-stats "$GW_STATS_PORT" true
    local stats_pid=$BENCH_LAST_PID q code first second statements_json="{}"
    for q in q1 q2 q3; do
        code=$(post "$GW_STATS_PORT" "${q}_gateway" "$OUT/responses/${q}_gateway.stats1.json")
        python3 "$BENCH_DIR/bench.py" verify "${q}_gateway" "$OUT/responses/${q}_gateway.stats1.json" "$code" >/dev/null ||
            bench_die "verification of ${q}_gateway (QUERY_STATS) failed"
        first=$(python3 "$BENCH_DIR/bench.py" stats "$OUT/responses/${q}_gateway.stats1.json")
        code=$(post "$GW_STATS_PORT" "${q}_gateway" "$OUT/responses/${q}_gateway.stats.json")
        second=$(python3 "$BENCH_DIR/bench.py" stats "$OUT/responses/${q}_gateway.stats.json")
        [[ "$first" == "$second" ]] || bench_log "warning: ${q}_gateway sent $first then $second statements"
        bench_log "  ${q}_gateway: $second SQL statement(s)"
        statements_json=$(jq -c --arg k "${q}_gateway" --argjson v "$second" '. + {($k): $v}' <<<"$statements_json")
    done
    bench_stop_pid "$stats_pid"

    # PostGraphile's statements: a separate instance logging each SQL statement it sends
    # (DEBUG=postgraphile:postgres, one line per statement), one request per case.
    bench_log "statements per request (PostGraphile with query debug logging on :$PGL_DEBUG_PORT)"
    start_postgraphile "$PGL_DEBUG_PORT" "$OUT/postgraphile-debug.log" DEBUG=postgraphile:postgres DEBUG_COLORS=0
    local dbg_pid=$BENCH_LAST_PID before after n
    for q in q1 q2 q3; do
        code=$(post "$PGL_DEBUG_PORT" "${q}_postgraphile" "$OUT/responses/${q}_postgraphile.debug.json")
        python3 "$BENCH_DIR/bench.py" verify "${q}_postgraphile" "$OUT/responses/${q}_postgraphile.debug.json" "$code" >/dev/null ||
            bench_die "verification of ${q}_postgraphile (debug instance) failed"
        sleep 0.3
        before=$(grep -c 'postgraphile:postgres ' "$OUT/postgraphile-debug.log" || true)
        code=$(post "$PGL_DEBUG_PORT" "${q}_postgraphile" "$OUT/responses/${q}_postgraphile.debug.json")
        sleep 0.3
        after=$(grep -c 'postgraphile:postgres ' "$OUT/postgraphile-debug.log" || true)
        n=$((after - before))
        bench_log "  ${q}_postgraphile: $n SQL statement(s)"
        statements_json=$(jq -c --arg k "${q}_postgraphile" --argjson v "$n" '. + {($k): $v}' <<<"$statements_json")
    done
    bench_stop_pid "$dbg_pid"

    # The two servers under test.
    bench_log "starting the gateway on :$GW_PORT and PostGraphile on :$PGL_PORT"
    start_bench_gateway gateway "$GW_PORT" false
    local gw_pid=$BENCH_LAST_PID
    start_postgraphile "$PGL_PORT" "$OUT/postgraphile.log"
    local pgl_pid=$BENCH_LAST_PID
    sleep 1
    local gw_idle_rss pgl_idle_rss gw_hwm="" gw_after_rss=""
    gw_idle_rss=$(proc_kb "$gw_pid" VmRSS)
    pgl_idle_rss=$(proc_kb "$pgl_pid" VmRSS)
    bench_log "idle VmRSS: gateway ${gw_idle_rss} kB, PostGraphile ${pgl_idle_rss} kB"

    # One request per case: HTTP 200, no GraphQL errors, the expected data; then the
    # gateway's and PostGraphile's answers compared product by product.
    bench_log "verifying every case"
    for q in "${cases[@]}"; do verify_case "$q"; done
    # compare: exit 0 identical; 2 same products in the same order but other fields differ
    # (recorded, loud, the run goes on and exits 2); 1 different products (the run stops).
    local q1_check checks=() c rc
    DATA_MISMATCH=false
    for q in q1 q2 q3; do
        rc=0
        c=$(python3 "$BENCH_DIR/bench.py" compare "$q" "$OUT/responses/${q}_gateway.json" "$OUT/responses/${q}_postgraphile.json") || rc=$?
        case $rc in
            0) bench_log "$c" ;;
            2) bench_log "WARNING: $c"; DATA_MISMATCH=true ;;
            *) printf '%s\n' "$c" >&2; bench_die "${q^^}: the gateway and PostGraphile return different products" ;;
        esac
        if [[ "$q" == q1 ]]; then
            q1_check="$c (PostGraphile filters status/published_at like the gateway; $q1_hidden hidden product(s) sit among the collection's first positions.)"
        else
            checks+=("$c")
        fi
    done

    # Each case: a warm-up, then the measured run; gateway and PostGraphile alternate, so
    # both see the same machine state, and the VmHWM kept after each run covers only the
    # cases run so far.
    bench_log "load runs: wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency, one case at a time, each after a $WARMUP warm-up"
    for q in "${cases[@]}"; do
        sleep 2
        run_case "$q" "$WARMUP" warmup
        sleep 1
        run_case "$q" "$DURATION" run
        # The server's peak resident set so far (VmHWM only grows), kept with the run.
        local case_pid=$gw_pid
        [[ "$q" == *_postgraphile ]] && case_pid=$pgl_pid
        jq -c --argjson h "$(proc_kb "$case_pid" VmHWM)" '. + {vmhwm_kb: $h}' "$OUT/runs/$q.json" >"$OUT/runs/$q.json.tmp"
        mv "$OUT/runs/$q.json.tmp" "$OUT/runs/$q.json"
        if [[ "$q" == q3_gateway ]]; then
            # The last gateway run: its peak resident set so far.
            gw_after_rss=$(proc_kb "$gw_pid" VmRSS)
            gw_hwm=$(proc_kb "$gw_pid" VmHWM)
        fi
    done
    # Q1 in rounds of short alternating windows (see BENCH_Q1_ROUNDS).
    rm -f "$OUT/runs/q1_gateway.rounds.jsonl" "$OUT/runs/q1_postgraphile.rounds.jsonl"
    if ((Q1_ROUNDS > 0)); then
        bench_log "Q1 rounds: $Q1_ROUNDS × (gateway, PostGraphile) of $ROUND_DURATION each"
        for ((r = 1; r <= Q1_ROUNDS; r++)); do
            if ((r % 2)); then
                run_case q1_gateway "$ROUND_DURATION" round
                run_case q1_postgraphile "$ROUND_DURATION" round
            else
                run_case q1_postgraphile "$ROUND_DURATION" round
                run_case q1_gateway "$ROUND_DURATION" round
            fi
        done
        gw_hwm=$(proc_kb "$gw_pid" VmHWM)
    fi
    local pgl_hwm pgl_after_rss
    pgl_hwm=$(proc_kb "$pgl_pid" VmHWM)
    pgl_after_rss=$(proc_kb "$pgl_pid" VmRSS)
    kill -0 "$gw_pid" 2>/dev/null || bench_die "the gateway died during the load runs"
    kill -0 "$pgl_pid" 2>/dev/null || bench_die "PostGraphile died during the load runs"
    bench_log "after load: gateway VmHWM ${gw_hwm} kB VmRSS ${gw_after_rss} kB; PostGraphile VmHWM ${pgl_hwm} kB"

    # Re-check each case once after the load (errors that only show up later).
    for q in "${cases[@]}"; do verify_case "$q"; done

    local elapsed=$((SECONDS - started))
    local checks_json
    checks_json=$(printf '%s\n' "${checks[@]}" | jq -Rsc 'split("\n") | map(select(length > 0))')
    jq -n \
        --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
        --arg nproc "$(nproc)" \
        --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
        --arg postgres "PostgreSQL $(sql 'SHOW server_version')" \
        --arg gateway_bin "${BIN#"$ROOT"/}" \
        --arg git "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src migrations Cargo.toml Cargo.lock 2>/dev/null || echo '+dirty')" \
        --arg bin_mtime "$(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC')" \
        --arg pool "$POOL" \
        --arg postgraphile "$(node -p "require('$BENCH_DIR/node_modules/postgraphile/package.json').version")" \
        --arg connection_filter "$(node -p "require('$BENCH_DIR/node_modules/postgraphile-plugin-connection-filter/package.json').version")" \
        --arg node "$(node --version)" \
        --arg wrk_cmd "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --timeout $WRK_TIMEOUT --latency -s bench/lua/graphql.lua" \
        --arg wrk_version "$(wrk -v 2>&1 | head -n1 | awk '{ print $1, $2 }')" \
        --arg warmup "$WARMUP" \
        --arg products "$PRODUCTS" \
        --arg q1_handle "$Q1_HANDLE" \
        --arg q2_handle "$q2_handle" \
        --argjson statements "$statements_json" \
        --argjson seed_wall_s "$SEED_WALL_S" \
        --arg seed_report "$SEED_REPORT" \
        --arg gateway_idle_vmrss_kb "$gw_idle_rss" \
        --arg gateway_vmhwm_kb "$gw_hwm" \
        --arg gateway_after_vmrss_kb "$gw_after_rss" \
        --arg pgl_idle_vmrss_kb "$pgl_idle_rss" \
        --arg pgl_vmhwm_kb "$pgl_hwm" \
        --arg pgl_after_vmrss_kb "$pgl_after_rss" \
        --arg q1_check "$q1_check" \
        --argjson checks "$checks_json" \
        --argjson data_mismatch "$DATA_MISMATCH" \
        --arg pgl_statements_note "SQL statements logged (DEBUG=postgraphile:postgres) by a separate PostGraphile instance for one request per case" \
        --arg elapsed "$((elapsed / 60)) min $((elapsed % 60)) s (seed, start-ups, checks, warm-up and load runs)" \
        '$ARGS.named' >"$OUT/meta.json"

    local rc=0
    python3 "$BENCH_DIR/bench.py" report "$OUT" >"$OUT/results.md" || rc=$?
    echo
    cat "$OUT/results.md"
    [[ $rc -eq 0 ]] || bench_die "some load runs saw non-2xx responses, GraphQL errors or socket errors"
    if [[ "$DATA_MISMATCH" == true ]]; then
        bench_log "WARNING: results written, but the gateway's answers differ from PostGraphile's beyond the product ids (see above)"
        exit 2
    fi
}

case "${1:-}" in
    "") full_run ;;
    --seed-only) seed_only "${2:-}" ;;
    -h | --help) sed -n '2,27p' "$0" ;;
    *) bench_die "unknown argument '$1' (use --seed-only N, or nothing)" ;;
esac
