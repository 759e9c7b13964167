#!/usr/bin/env bash
# bench/compare.sh — two builds of the gateway side by side, in one run, on the same data:
# a baseline (an earlier commit's release binary) and a candidate (by default this tree's).
# For a change that must not cost speed (a refactoring) or one that claims to add it.
# Not part of CI. See bench/README.md.
#
#   bench/compare.sh BASELINE_BIN [CANDIDATE_BIN]
#
# Cases, each measured in alternating rounds (the build that goes first alternates too),
# reported as the median of the per-round ratios candidate ÷ baseline:
#   q1_uncached  storefront Q1 (the collection grid), response cache off
#   q1_cached    the same with the response cache on (answered from the in-process tier)
#   checkout     cartCreate → cartLinesAdd → cartComplete at fixed concurrency
#                (examples/checkout_load), on a database of its own with ample stock
# Rate limits are off everywhere; they are not the subject.
#
# Environment (all optional): BENCH_PRODUCTS (10000), BENCH_ROUNDS (5), BENCH_DURATION
# (wrk seconds per measurement, 8s), BENCH_WARMUP (2s), BENCH_CONNECTIONS (32),
# BENCH_CHECKOUT_S (seconds per checkout measurement, 10), BENCH_CONCURRENCY (checkout
# buyers, 32), BENCH_CASES ("q1_uncached q1_cached checkout"), BENCH_IGNORE_CARGO=1.
# Listens on 127.0.0.1: 18281–18286. Results: bench/out/compare.md, bench/out/compare-runs/.
set -euo pipefail

BENCH_LOG_TAG="compare-bench"
# bench/lib.sh: BENCH_DIR, ROOT, OUT, BIN, PRODUCTS, PG, PG_URL, Q1_HANDLE; logging, the
# exit trap, the cargo guard, wrk, seeding, starting gateways, running wrk.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 1 ]] || bench_die "usage: bench/compare.sh BASELINE_BIN [CANDIDATE_BIN]"
BASELINE=$(realpath "$1")
CANDIDATE=$(realpath "${2:-$BIN}")
[[ -x "$BASELINE" ]] || bench_die "no baseline binary at $BASELINE"
[[ -x "$CANDIDATE" ]] || bench_die "no candidate binary at $CANDIDATE (cargo build --release)"

ROUNDS="${BENCH_ROUNDS:-5}"
DURATION="${BENCH_DURATION:-8s}"
WARMUP="${BENCH_WARMUP:-2s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
CHECKOUT_S="${BENCH_CHECKOUT_S:-10}"
CONCURRENCY="${BENCH_CONCURRENCY:-32}"
CASES="${BENCH_CASES:-q1_uncached q1_cached checkout}"
LOAD="$ROOT/target/release/examples/checkout_load"
DB_NAME=cg_bench
CHECKOUT_DB=cg_bench_compare_checkout
RUNS="$OUT/compare-runs"

require_cmd jq
require_cmd python3
require_quiet_machine
ensure_tool wrk
if [[ " $CASES " == *" checkout "* && ! -x "$LOAD" ]]; then
    bench_log "building the load generator (cargo build --release --example checkout_load)"
    (cd "$ROOT" && cargo build -j 2 --release --example checkout_load >&2)
fi
mkdir -p "$OUT"
rm -rf "$RUNS" && mkdir -p "$RUNS"

# The candidate seeds and migrates (migrations only add; the baseline reads the same data).
BIN="$CANDIDATE" ensure_bench_db "$DB_NAME"
write_q1_body "$RUNS/q1.json"

# start NAME BINARY PORT VAR=value...: a gateway of one build.
start() {
    local name=$1 bin=$2 port=$3
    shift 3
    BIN="$bin" start_gateway "$name" "$port" RATE_LIMIT_ENABLED=false "$@"
}

declare -A URL
if [[ " $CASES " == *" q1_uncached "* ]]; then
    start baseline-uncached "$BASELINE" 18281 DATABASE_URL="$PG_URL/$DB_NAME" CACHE_ENABLED=false RUN_WORKERS=false
    start candidate-uncached "$CANDIDATE" 18282 DATABASE_URL="$PG_URL/$DB_NAME" CACHE_ENABLED=false RUN_WORKERS=false
    URL[q1_uncached.baseline]="http://127.0.0.1:18281/graphql"
    URL[q1_uncached.candidate]="http://127.0.0.1:18282/graphql"
fi
if [[ " $CASES " == *" q1_cached "* ]]; then
    # Each build its own key prefix: neither may answer from the other's entries.
    start baseline-cached "$BASELINE" 18283 DATABASE_URL="$PG_URL/$DB_NAME" CACHE_ENABLED=true \
        CACHE_KEY_PREFIX="cg-compare-baseline-$$" RUN_WORKERS=false
    start candidate-cached "$CANDIDATE" 18284 DATABASE_URL="$PG_URL/$DB_NAME" CACHE_ENABLED=true \
        CACHE_KEY_PREFIX="cg-compare-candidate-$$" RUN_WORKERS=false
    URL[q1_cached.baseline]="http://127.0.0.1:18283/graphql"
    URL[q1_cached.candidate]="http://127.0.0.1:18284/graphql"
fi
if [[ " $CASES " == *" checkout "* ]]; then
    BIN="$CANDIDATE" seed_db "$CHECKOUT_DB" 2000 "$OUT/compare-checkout-seed.log"
    bench_at_exit drop_checkout_db
    drop_checkout_db() { drop_db "$CHECKOUT_DB"; }
    prepare_checkout_db "$CHECKOUT_DB" 500 "$RUNS/checkout-pairs.tsv"
    start baseline-checkout "$BASELINE" 18285 DATABASE_URL="$PG_URL/$CHECKOUT_DB" CACHE_ENABLED=false RUN_WORKERS=false
    start candidate-checkout "$CANDIDATE" 18286 DATABASE_URL="$PG_URL/$CHECKOUT_DB" CACHE_ENABLED=false RUN_WORKERS=false
    URL[checkout.baseline]="http://127.0.0.1:18285"
    URL[checkout.candidate]="http://127.0.0.1:18286"
fi

# measure CASE BUILD ROUND: one measurement; prints its rate (req/s or orders/s).
measure() {
    local case=$1 build=$2 round=$3 url=${URL[$1.$2]}
    if [[ $case == checkout ]]; then
        psql "${PG[@]}" -d "$CHECKOUT_DB" -c "VACUUM (ANALYZE)" >/dev/null
        psql "${PG[@]}" -d "$CHECKOUT_DB" -c "CHECKPOINT" >/dev/null
        local json
        json=$("$LOAD" "$url" "$CONCURRENCY" "$CHECKOUT_S" "$RUNS/checkout-pairs.tsv")
        printf '%s\n' "$json" >"$RUNS/$case.$build.$round.json"
        [[ $(jq -r .errors <<<"$json") == 0 ]] || bench_die "$case $build: errors: $json"
        jq -r .orders_per_s <<<"$json"
    else
        run_wrk "$RUNS/$case.$build.$round.warmup.txt" "$CONNECTIONS" "$WARMUP" "$url" \
            BENCH_BODY_FILE="$RUNS/q1.json"
        run_wrk "$RUNS/$case.$build.$round.txt" "$CONNECTIONS" "$DURATION" "$url" \
            BENCH_BODY_FILE="$RUNS/q1.json"
        printf '%s\n' "$WRK_RESULT" >"$RUNS/$case.$build.$round.json"
        [[ $(jq -r '.non2xx + .graphql_errors' <<<"$WRK_RESULT") == 0 ]] ||
            bench_die "$case $build: bad responses: $WRK_RESULT"
        jq -r .rps <<<"$WRK_RESULT"
    fi
}

if [[ " $CASES " == *" checkout "* ]]; then
    bench_log "checkout warm-up (5 s per build)"
    "$LOAD" "${URL[checkout.baseline]}" "$CONCURRENCY" 5 "$RUNS/checkout-pairs.tsv" >/dev/null
    "$LOAD" "${URL[checkout.candidate]}" "$CONCURRENCY" 5 "$RUNS/checkout-pairs.tsv" >/dev/null
fi

RESULTS="$RUNS/results.tsv"
: >"$RESULTS"
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then order="baseline candidate"; else order="candidate baseline"; fi
    for case in $CASES; do
        for build in $order; do
            rate=$(measure "$case" "$build" "$round")
            bench_log "round $round $case $build: $rate"
            printf '%s\t%s\t%s\t%s\n' "$round" "$case" "$build" "$rate" >>"$RESULTS"
        done
    done
done

python3 - "$RESULTS" "$BASELINE" "$CANDIDATE" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$CHECKOUT_S" "$CONCURRENCY" >"$OUT/compare.md" <<'PY'
import statistics, sys
path, base, cand, rounds, dur, conns, cs, conc = sys.argv[1:]
rates = {}
for line in open(path):
    r, case, build, rate = line.split("\t")
    rates.setdefault(case, {}).setdefault(int(r), {})[build] = float(rate)
print(f"## Side by side: candidate ÷ baseline ({rounds} alternating rounds)\n")
print(f"- baseline: `{base}`\n- candidate: `{cand}`")
print(f"- Q1: wrk -t2 -c{conns}, {dur} per measurement; checkout: {conc} buyers, {cs} s per measurement; rate limits off\n")
print("| case | baseline median | candidate median | per-round ratios | median ratio |")
print("| --- | ---: | ---: | --- | ---: |")
unit = {"checkout": "orders/s"}
for case, by_round in rates.items():
    ratios = [v["candidate"] / v["baseline"] for v in by_round.values() if v.get("baseline")]
    b = statistics.median(v["baseline"] for v in by_round.values())
    c = statistics.median(v["candidate"] for v in by_round.values())
    u = unit.get(case, "req/s")
    print(f"| {case} | {b:,.0f} {u} | {c:,.0f} {u} | {', '.join(f'{x:.2f}' for x in ratios)} | **{statistics.median(ratios):.2f}** |")
PY
cat "$OUT/compare.md"
