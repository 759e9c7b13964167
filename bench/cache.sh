#!/usr/bin/env bash
# bench/cache.sh — the response cache, measured side by side in one run: the storefront's
# Q1–Q3 (bench/run.sh's queries) against a gateway with the cache off and one with it on,
# Q1 as a persisted query over GET (what a CDN would fetch), and the same bytes as a
# static file served by nginx (the ceiling of HTTP serving on this machine).
# Not part of CI. See bench/README.md.
#
# Needs: the release binary (cargo build --release; GATEWAY_BIN overrides), PostgreSQL on
# 127.0.0.1:5432 and Redis on 127.0.0.1:6379, python3, curl, jq. Installs wrk and nginx
# (apt-get) when missing. Uses the database cg_bench (seeded with BENCH_PRODUCTS products,
# default 10000, when it is missing or empty).
#
# Environment (all optional): BENCH_DURATION (default 10s), BENCH_WARMUP (default 3s),
# BENCH_CONNECTIONS (default 32), BENCH_IGNORE_CARGO=1.
# Listens on 127.0.0.1: 18191 (cached), 18192 (uncached), 18193 (nginx).
# Results: bench/out/cache-results.md and bench/out/cache-runs/*.json.
set -euo pipefail

BENCH_LOG_TAG="cache-bench"
# bench/lib.sh: BENCH_DIR, ROOT, OUT, BIN (GATEWAY_BIN), PRODUCTS (BENCH_PRODUCTS), PG, PG_URL,
# Q1_HANDLE; logging, the exit trap, the cargo guard, wrk/nginx, seeding, servers, wrk runs.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FIXTURES="$ROOT/tests/fixtures/nextjs-commerce"
RUNS="$OUT/cache-runs"
DB_NAME=cg_bench
DB_URL="$PG_URL/$DB_NAME"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-3s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
CACHED=18191
UNCACHED=18192
NGINX=18193

# nginx runs as a daemon: stopped on exit through its pid file.
NGINX_DIR=""
stop_nginx() {
    if [[ -n "$NGINX_DIR" && -f "$NGINX_DIR/nginx.pid" ]]; then
        kill -TERM "$(cat "$NGINX_DIR/nginx.pid")" 2>/dev/null || true
    fi
}
bench_at_exit stop_nginx

require_gateway_bin
require_quiet_machine
ensure_tool wrk
ensure_tool nginx
NGINX_BIN=$(tool_path nginx)

fresh_runs_dir "$RUNS"

ensure_bench_db "$DB_NAME"

gateway() { # port cache_enabled
    start_gateway "cache-gateway-$1" "$1" DATABASE_URL="$DB_URL" CACHE_ENABLED="$2" RATE_LIMIT_ENABLED=false \
        CACHE_KEY_PREFIX="bench-$$" RUN_WORKERS=false
}
gateway "$CACHED" true
gateway "$UNCACHED" false

q2_handle=$(psql "${PG[@]}" -d "$DB_NAME" -Atc "SELECT handle FROM products WHERE status = 'ACTIVE' ORDER BY id LIMIT 1")
body() { python3 "$BENCH_DIR/bench.py" body "$2" "$3" "$OUT/cache-$1.json"; }
write_q1_body "$OUT/cache-q1.json"
body q2 "$FIXTURES/getProduct.graphql" "$(jq -nc --arg h "$q2_handle" '{handle: $h}')"
body q3 "$FIXTURES/getProducts.graphql" '{}'

# Q1 as a persisted query: registered once by POST (APQ), then fetched by GET.
q1_hash=$(python3 -c 'import hashlib, json, sys; print(hashlib.sha256(json.load(open(sys.argv[1]))["query"].encode()).hexdigest())' "$OUT/cache-q1.json")
ext=$(jq -nc --arg h "$q1_hash" '{persistedQuery: {version: 1, sha256Hash: $h}}')
jq -c --argjson e "$ext" '. + {extensions: $e}' "$OUT/cache-q1.json" |
    curl -sf -H 'Content-Type: application/json' --data-binary @- "http://127.0.0.1:$CACHED/graphql" |
    jq -e '.errors == null' >/dev/null || bench_die "registering Q1 as a persisted query failed"
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
q1_vars=$(jq -c .variables "$OUT/cache-q1.json")
q1_get="http://127.0.0.1:$CACHED/graphql?extensions=$(enc "$ext")&variables=$(enc "$q1_vars")"
curl -sf -D "$OUT/cache-q1-get.headers" -o "$OUT/cache-q1-get.body" "$q1_get" ||
    bench_die "persisted GET of Q1 failed"
jq -e '.data.collection.products.edges | length == 24' "$OUT/cache-q1-get.body" >/dev/null ||
    bench_die "the persisted GET of Q1 did not return 24 products"

# nginx serving those very bytes.
NGINX_DIR=$(mktemp -d)
chmod 755 "$NGINX_DIR"
cp "$OUT/cache-q1-get.body" "$NGINX_DIR/q1.json"
chmod 644 "$NGINX_DIR/q1.json"
cat >"$NGINX_DIR/nginx.conf" <<EOF
worker_processes 2;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    default_type application/json;
    keepalive_requests 1000000;
    sendfile on;
    server {
        listen 127.0.0.1:$NGINX;
        root $NGINX_DIR;
    }
}
EOF
"$NGINX_BIN" -c "$NGINX_DIR/nginx.conf" -p "$NGINX_DIR" -g 'daemon on;'
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$NGINX/q1.json" && break; sleep 0.1; done

run() { # name url [body-file]
    local name=$1 url=$2 bodyfile=${3:-} method=POST
    [[ -z "$bodyfile" ]] && method=GET
    wrk_case "$name" "$url" "$CONNECTIONS" BENCH_METHOD="$method" BENCH_BODY_FILE="$bodyfile"
}

bench_log "wrk -t2 -c$CONNECTIONS, $WARMUP warm-up then $DURATION per case"
for q in q1 q2 q3; do
    run "${q}_uncached" "http://127.0.0.1:$UNCACHED/graphql" "$OUT/cache-$q.json"
    run "${q}_cached" "http://127.0.0.1:$CACHED/graphql" "$OUT/cache-$q.json"
done
run q1_persisted_get "$q1_get"
run nginx_static "http://127.0.0.1:$NGINX/q1.json"
curl -s "http://127.0.0.1:$CACHED/readyz" | jq .cache >"$RUNS/cache-status.json"

python3 - "$RUNS" "$OUT/cache-results.md" "$CONNECTIONS" <<'EOF'
import json, sys, pathlib
runs, out, conns = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
r = {p.stem: json.loads(p.read_text()) for p in runs.glob("*.json") if p.stem != "cache-status"}
bad = [n for n, v in r.items() if v["non2xx"] or v["graphql_errors"]]
lines = [f"| case | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
for n in ["q1_uncached", "q1_cached", "q2_uncached", "q2_cached", "q3_uncached", "q3_cached", "q1_persisted_get", "nginx_static"]:
    v = r[n]
    lines.append(f"| {n} | {v['rps']:.0f} | {v['p50_us']/1000:.2f} | {v['p99_us']/1000:.2f} |")
ratio = lambda a, b: r[a]["rps"] / r[b]["rps"]
lines += ["", f"wrk -t2 -c{conns}; every case checked (non-2xx or GraphQL errors: {bad or 'none'}).", ""]
for q in ("q1", "q2", "q3"):
    lines.append(f"- {q.upper()} cached / uncached: **{ratio(q + '_cached', q + '_uncached'):.1f}×**")
lines.append(f"- Q1 persisted GET / uncached Q1: **{ratio('q1_persisted_get', 'q1_uncached'):.1f}×**")
lines.append(f"- Q1 cached POST / nginx static: **{ratio('q1_cached', 'nginx_static'):.2f}**; persisted GET / nginx: **{ratio('q1_persisted_get', 'nginx_static'):.2f}**")
lines.append(f"- p99 of cached Q1: {r['q1_cached']['p99_us']/1000:.2f} ms; persisted GET: {r['q1_persisted_get']['p99_us']/1000:.2f} ms")
pathlib.Path(out).write_text("\n".join(lines) + "\n")
print("\n".join(lines))
if bad:
    sys.exit(f"failed requests in: {bad}")
EOF
