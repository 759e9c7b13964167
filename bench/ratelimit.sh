#!/usr/bin/env bash
# bench/ratelimit.sh — what the rate limiter costs, and what a partner sync sustains.
#
# 1. Storefront Q1 (bench/run.sh's query) against two gateways that differ only in
#    RATE_LIMIT_ENABLED, side by side in alternating rounds, uncached (the database path)
#    and cached (the in-process hit path, where a fixed per-request cost weighs most).
#    Traffic comes from BENCH_BUYERS distinct buyer addresses (X-Forwarded-For through a
#    trusted proxy): each buyer is seldom seen, so nearly every request is a Redis round
#    trip of the limiter — the pessimistic case. Limits are the defaults (nothing is
#    throttled: that is the point of "real shoppers never notice").
# 2. The admin API: a partner sync of bulk inventory updates (inventorySetQuantities with
#    250 items, alternating quantities so every row changes), with BENCH_ADMIN_CONNECTIONS
#    parallel requests on a plan that does not throttle, reported as item updates/s.
#
# Needs: a release build (target/release/commerce-gateway), PostgreSQL on 127.0.0.1:5432,
# Redis on 127.0.0.1:6379, python3, curl, jq, wrk (installed with apt-get when missing).
# Uses the database cg_bench (seeded with BENCH_PRODUCTS products, default 10000).
# Environment (optional): BENCH_DURATION (6s), BENCH_WARMUP (2s), BENCH_CONNECTIONS (32),
# BENCH_ROUNDS (5), BENCH_BUYERS (10000), BENCH_ADMIN_CONNECTIONS (4), BENCH_MODES
# ("false true": uncached and cached), BENCH_IGNORE_CARGO=1.
# Listens on 127.0.0.1:18301–18305. Results: bench/out/ratelimit-results.md and
# bench/out/ratelimit-runs/*.json.
set -euo pipefail

BENCH_LOG_TAG="rl-bench"
# bench/lib.sh: BENCH_DIR, ROOT, OUT, BIN (GATEWAY_BIN), PRODUCTS (BENCH_PRODUCTS), PG, PG_URL,
# Q1_HANDLE; logging, the exit trap, the cargo guard, wrk, seeding, servers, wrk runs.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS="$OUT/ratelimit-runs"
DB_NAME=cg_bench
DB_URL="$PG_URL/$DB_NAME"
DURATION="${BENCH_DURATION:-6s}"
WARMUP="${BENCH_WARMUP:-2s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
ROUNDS="${BENCH_ROUNDS:-5}"
BUYERS="${BENCH_BUYERS:-10000}"
ADMIN_CONNECTIONS="${BENCH_ADMIN_CONNECTIONS:-4}"

require_gateway_bin
require_quiet_machine
ensure_tool wrk

fresh_runs_dir "$RUNS"

ensure_bench_db "$DB_NAME"

PREFIX="rlbench-$$"
gateway() { # port limits(true|false) cached(true|false) [extra env...]
    local port=$1 limits=$2 cached=$3
    shift 3
    start_gateway "ratelimit-gateway-$port" "$port" "$@" DATABASE_URL="$DB_URL" CACHE_ENABLED="$cached" \
        CACHE_KEY_PREFIX="$PREFIX-$port" RATE_LIMIT_KEY_PREFIX="$PREFIX" RATE_LIMIT_ENABLED="$limits" \
        TRUSTED_PROXIES=127.0.0.1/32 DATABASE_POOL_SIZE=8 RUN_WORKERS=false METRICS_ENABLED=true
}
# port: off/on × uncached/cached, and the admin gateway.
gateway 18301 false false
gateway 18302 true false
gateway 18303 false true
gateway 18304 true true
PLANS="bench=100000000:10000000,standard=1000:50"
gateway 18305 true false ADMIN_PLANS="$PLANS"
port_of() { # limits cached
    case "$1/$2" in
        off/false) echo 18301 ;; on/false) echo 18302 ;; off/true) echo 18303 ;; on/true) echo 18304 ;;
    esac
}

write_q1_body "$OUT/ratelimit-q1.json"

bench_log "Q1: wrk -t2 -c$CONNECTIONS from $BUYERS buyer addresses, $WARMUP warm-up then $DURATION per case, $ROUNDS rounds"
MODES="${BENCH_MODES:-false true}"
for round in $(seq 1 "$ROUNDS"); do
    # Odd rounds run limits off first, even rounds on first: neither gains from going second.
    order="off on"
    ((round % 2 == 0)) && order="on off"
    for cached in $MODES; do
        for limits in $order; do
            label=$([[ $cached == true ]] && echo cached || echo uncached)
            wrk_case "${label}_${limits}_r$round" "http://127.0.0.1:$(port_of "$limits" "$cached")/graphql" "$CONNECTIONS" \
                BENCH_BODY_FILE="$OUT/ratelimit-q1.json" BENCH_XFF_POOL="$BUYERS"
        done
    done
done
decisions=$(curl -s http://127.0.0.1:18302/metrics | awk '/^gateway_rate_limit_decisions_total\{.*storefront_ip.*outcome="allowed"/ {s += $NF} END {print s + 0}')
throttled=$(curl -s http://127.0.0.1:18302/metrics | awk '/^gateway_rate_limit_decisions_total\{.*outcome="throttled"/ {s += $NF} END {print s + 0}')
bench_log "limited uncached gateway: $decisions allowed decisions, $throttled throttled"

# --- the partner sync -------------------------------------------------------------
bench_log "admin: bulk inventory updates of 250 items, $ADMIN_CONNECTIONS connections"
KEY=$(ADMIN_PLANS="$PLANS" DATABASE_URL="$DB_URL" RUST_LOG=warn "$BIN" keys create --name "bench-$$" --scopes write_inventory --plan bench)
for q in 1 2; do
    psql "${PG[@]}" -d "$DB_NAME" -Atc "SELECT json_build_object('query',
        'mutation(\$q: [InventoryQuantityInput!]!) { inventorySetQuantities(input: {reason: \"sync\", quantities: \$q}) { userErrors { code } } }',
        'variables', json_build_object('q', json_agg(json_build_object(
            'variantId', 'gid://shopify/ProductVariant/' || id, 'locationId', 'gid://shopify/Location/1', 'quantity', 100 + $q))))
        FROM (SELECT id FROM product_variants ORDER BY id LIMIT 250) v" >"$OUT/ratelimit-bulk-$q.json"
done
cost=$(curl -s -X POST http://127.0.0.1:18305/admin/graphql -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
    --data-binary @"$OUT/ratelimit-bulk-1.json" | jq '.extensions.cost.actualQueryCost')
for round in $(seq 1 "$ROUNDS"); do
    wrk_case "admin_bulk_r$round" "http://127.0.0.1:18305/admin/graphql" "$ADMIN_CONNECTIONS" \
        BENCH_BODY_FILE="$OUT/ratelimit-bulk-1.json" BENCH_BODY_FILE2="$OUT/ratelimit-bulk-2.json" BENCH_AUTH="$KEY"
done
ADMIN_PLANS="$PLANS" DATABASE_URL="$DB_URL" RUST_LOG=warn "$BIN" keys revoke "$(DATABASE_URL="$DB_URL" "$BIN" keys list | awk -v n="bench-$$" '$3 == n {print $1}')" >/dev/null

python3 - "$RUNS" "$OUT/ratelimit-results.md" "$CONNECTIONS" "$ROUNDS" "$BUYERS" "$ADMIN_CONNECTIONS" "$cost" <<'PY'
import json, sys, pathlib, statistics
runs, out, conns, rounds, buyers, admin_conns, cost = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7])
r = {p.stem: json.loads(p.read_text()) for p in runs.glob("*.json")}
bad = [n for n, v in r.items() if v["non2xx"] or v["graphql_errors"]]
lines = [f"**Storefront Q1, limits off vs on** ({rounds} rounds, {buyers} buyer addresses)", "",
         "| mode | off req/s (median) | on req/s (median) | ratio of medians | median of per-round ratios | p99 off / on ms |",
         "|---|---:|---:|---:|---:|---:|"]
for mode in [m for m in ["uncached", "cached"] if f"{m}_off_r1" in r]:
    off = [r[f"{mode}_off_r{i}"]["rps"] for i in range(1, rounds + 1)]
    on = [r[f"{mode}_on_r{i}"]["rps"] for i in range(1, rounds + 1)]
    paired = statistics.median(b / a for a, b in zip(off, on))
    p99 = lambda k: statistics.median(r[f"{mode}_{k}_r{i}"]["p99_us"] for i in range(1, rounds + 1)) / 1000
    lines.append(f"| {mode} | {statistics.median(off):.0f} | {statistics.median(on):.0f} | {statistics.median(on) / statistics.median(off):.3f} | {paired:.3f} | {p99('off'):.2f} / {p99('on'):.2f} |")
admin = [r[f"admin_bulk_r{i}"] for i in range(1, rounds + 1)]
rps = statistics.median(a["rps"] for a in admin)
lines += ["", f"**Admin bulk inventory sync** (inventorySetQuantities, 250 items a request, {admin_conns} connections, {rounds} rounds)", "",
          "| requests/s (median) | item updates/s | p50 ms | p99 ms | cost a request |", "|---:|---:|---:|---:|---:|",
          f"| {rps:.1f} | {rps * 250:.0f} | {statistics.median(a['p50_us'] for a in admin) / 1000:.1f} | {statistics.median(a['p99_us'] for a in admin) / 1000:.1f} | {cost} |",
          "", f"On the default `standard` plan (1,000 points, 50/s) a partner sustains 50 / {cost} = {50 / cost:.1f} such requests/s = {50 / cost * 250:.0f} item updates/s, after a burst of {1000 // cost} requests.",
          "", f"wrk -t2 -c{conns}; every response checked (non-2xx or GraphQL errors: {bad or 'none'})."]
pathlib.Path(out).write_text("\n".join(lines) + "\n")
print("\n".join(lines))
if bad:
    sys.exit(f"failed requests in: {bad}")
PY
