#!/usr/bin/env bash
# bench/checkout.sh — checkout throughput of the release gateway against the database's
# own ceiling, measured in one run on the same data. Not part of CI. See bench/README.md.
#
# Each order is one buyer's cartCreate (1 line) → cartLinesAdd (a 2nd line) → cartComplete,
# driven by examples/checkout_load.rs at fixed concurrency. The ceiling is pgbench running
# the same statements in the same three transactions (bench/pgbench/checkout.sql).
#
# Environment (all optional):
#   GATEWAY_BIN            gateway binary (default target/release/commerce-gateway)
#   BENCH_PRODUCTS         products to seed (default 10000)
#   BENCH_DURATION_S       seconds per measurement (default 20)
#   BENCH_CONCURRENCY      virtual buyers of the load generator (default 32)
#   BENCH_POOL_SIZE        gateway DB pool (default 16)
#   BENCH_MAX_CONCURRENT   the gateway's MAX_CONCURRENT_REQUESTS (default: its own default)
#   BENCH_PGBENCH_CLIENTS  pgbench client counts tried; the best is the ceiling (default "8 16 32")
#   BENCH_IGNORE_CARGO=1   run even while cargo runs (noisy)
set -euo pipefail

BENCH_LOG_TAG="checkout-bench"
# bench/lib.sh: BENCH_DIR, ROOT, OUT, BIN (GATEWAY_BIN), PRODUCTS (BENCH_PRODUCTS), PG, PG_URL;
# logging, the exit trap, the cargo guard, seeding, starting the gateway.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOAD="$ROOT/target/release/examples/checkout_load"
DURATION="${BENCH_DURATION_S:-20}"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
POOL="${BENCH_POOL_SIZE:-16}"
PGBENCH_CLIENTS="${BENCH_PGBENCH_CLIENTS:-8 16 32}"
PAIRS=1000
DB_NAME=cg_bench_checkout
DB_URL="$PG_URL/$DB_NAME"
PORT=18191

require_cmd pgbench "Debian: postgresql-contrib / postgresql-15"
require_gateway_bin
require_quiet_machine
if [[ ! -x "$LOAD" ]]; then
    bench_log "building the load generator (cargo build --release --example checkout_load)"
    (cd "$ROOT" && cargo build -j 2 --release --example checkout_load >&2)
fi
mkdir -p "$OUT"
standbys=$(psql "${PG[@]}" -d postgres -Atc "SELECT count(*) FROM pg_stat_replication")
if [[ "$standbys" != "0" ]]; then
    # A standby replays every order's WAL on the same two cores (about a fifth of the
    # machine: the test suite's replica took the gateway from ~440 to ~350 orders/s).
    bench_log "WARNING: $standbys streaming replica(s) attached; stop them for comparable figures (scripts/replica.sh destroy)"
fi

seed_db "$DB_NAME" "$PRODUCTS" "$OUT/checkout-seed.log"
prepare_checkout_db "$DB_NAME" "$PAIRS" "$OUT/checkout-pairs.tsv"

bench_log "starting the gateway (workers off: the jobs the orders queue wait for later)"
start_gateway checkout-gateway "$PORT" DATABASE_URL="$DB_URL" RUN_WORKERS=false RATE_LIMIT_ENABLED=false \
    DATABASE_POOL_SIZE="$POOL" MAX_CONCURRENT_REQUESTS="${BENCH_MAX_CONCURRENT:-}"
GW_PID=$BENCH_LAST_PID

# Before each measurement: vacuum what the previous one wrote (otherwise autovacuum starts
# in the middle of the next measurement; the gateway's run after pgbench fell from ~120 to
# ~40 orders/s that way) and checkpoint, so every measurement starts from the same state.
settle() {
    psql "${PG[@]}" -d "$DB_NAME" -c "VACUUM (ANALYZE)" >/dev/null
    psql "${PG[@]}" -d "$DB_NAME" -c "CHECKPOINT" >/dev/null
    sleep 1
}

# gateway_run N: one measurement of the gateway -> GW_JSONS[N]
GW_JSONS=()
gateway_run() {
    settle
    bench_log "gateway run $1: $CONCURRENCY buyers for ${DURATION}s"
    local json
    json=$("$LOAD" "http://127.0.0.1:$PORT" "$CONCURRENCY" "$DURATION" "$OUT/checkout-pairs.tsv")
    bench_log "gateway run $1: $json"
    GW_JSONS+=("$json")
}

bench_log "warm-up (5 s)"
"$LOAD" "http://127.0.0.1:$PORT" "$CONCURRENCY" 5 "$OUT/checkout-pairs.tsv" >/dev/null
# The gateway is measured before and after pgbench (which runs with the gateway idle),
# so that neither side always gets the fresher database; the report uses the mean.
gateway_run 1

BEST_TPS=0; BEST_CLIENTS=0; PGBENCH_LINES=""
for clients in $PGBENCH_CLIENTS; do
    settle
    bench_log "pgbench: $clients clients for ${DURATION}s"
    out=$(pgbench -h 127.0.0.1 -U postgres -n -M prepared -c "$clients" -j 2 -T "$DURATION" \
        -D pairs="$PAIRS" -f "$BENCH_DIR/pgbench/checkout.sql" "$DB_NAME" 2>&1) || { echo "$out" >&2; bench_die "pgbench failed"; }
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -n1)
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' | head -n1)
    failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' | head -n1)
    bench_log "pgbench $clients clients: $tps tps, latency avg $lat ms, failed ${failed:-0}"
    PGBENCH_LINES+="| pgbench, $clients clients | $(printf '%.0f' "$tps") | avg $lat ms |"$'\n'
    if python3 -c "import sys; sys.exit(0 if $tps > $BEST_TPS else 1)"; then BEST_TPS=$tps; BEST_CLIENTS=$clients; fi
done

gateway_run 2
GW_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")
bench_stop_pid "$GW_PID"
printf '%s\n' "${GW_JSONS[@]}" >"$OUT/checkout-gateway.json"
GW_JSON=$(printf '%s\n' "${GW_JSONS[@]}" | python3 -c '
import json, sys
runs = [json.loads(l) for l in sys.stdin if l.strip()]
out = {k: sum(r[k] for r in runs) / len(runs) for k in ("orders_per_s", "flow_p50_ms", "flow_p99_ms", "complete_p50_ms", "complete_p99_ms")}
out["orders"] = sum(r["orders"] for r in runs)
out["errors"] = sum(r["errors"] for r in runs)
out["first_error"] = next((r["first_error"] for r in runs if r["first_error"]), None)
out["runs"] = [round(r["orders_per_s"], 1) for r in runs]
print(json.dumps(out))')

python3 - "$GW_JSON" "$BEST_TPS" "$BEST_CLIENTS" "$GW_RSS_KB" "$CONCURRENCY" "$DURATION" "$PGBENCH_LINES" >"$OUT/checkout.md" <<'PY'
import json, sys
gw = json.loads(sys.argv[1]); tps = float(sys.argv[2]); clients = sys.argv[3]
rss_mib = int(sys.argv[4]) / 1024; conc = sys.argv[5]; dur = sys.argv[6]; lines = sys.argv[7]
ratio = gw["orders_per_s"] / tps if tps else 0
print(f"## Checkout ({conc} buyers, {dur} s, one run)\n")
print("| | orders/s | latency |")
print("| --- | ---: | --- |")
print(f"| gateway: cartCreate → cartLinesAdd → cartComplete (mean of runs {gw['runs']}) | {gw['orders_per_s']:.0f} | flow p50 {gw['flow_p50_ms']:.1f} ms, p99 {gw['flow_p99_ms']:.1f} ms; cartComplete p50 {gw['complete_p50_ms']:.1f} ms, p99 {gw['complete_p99_ms']:.1f} ms |")
print(lines, end="")
print(f"\n- Gateway / pgbench ceiling (best: {clients} clients): **{ratio:.2f}**")
print(f"- Orders: {gw['orders']}, errors: {gw['errors']}" + (f" (first: {gw['first_error']})" if gw['errors'] else ""))
print(f"- Gateway peak RSS: {rss_mib:.0f} MiB")
PY
cat "$OUT/checkout.md"
