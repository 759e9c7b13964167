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

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
FIXTURES="$ROOT/tests/fixtures/nextjs-commerce"
OUT="$BENCH_DIR/out"
RUNS="$OUT/cache-runs"
BIN="${GATEWAY_BIN:-$ROOT/target/release/commerce-gateway}"
DB_NAME=cg_bench
DB_URL="postgres://postgres@127.0.0.1:5432/$DB_NAME"
PRODUCTS="${BENCH_PRODUCTS:-10000}"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-3s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
CACHED=18191
UNCACHED=18192
NGINX=18193
Q1_HANDLE=apparel
PG=(-X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres)

log() { printf '[cache-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PIDS=()
NGINX_DIR=""
cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n "$NGINX_DIR" && -f "$NGINX_DIR/nginx.pid" ]]; then
        kill -TERM "$(cat "$NGINX_DIR/nginx.pid")" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

[[ -x "$BIN" ]] || die "no gateway binary at $BIN (cargo build --release)"
if pgrep -x cargo >/dev/null && [[ -z "${BENCH_IGNORE_CARGO:-}" ]]; then
    die "a cargo process is running (it competes for the 2 cores); set BENCH_IGNORE_CARGO=1 to run anyway"
fi
for tool in wrk nginx; do
    if ! command -v "$tool" >/dev/null && [[ ! -x /usr/sbin/$tool ]]; then
        log "installing $tool (apt-get)"
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$tool" >/dev/null ||
            { timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$tool" >/dev/null; }
    fi
done
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)

mkdir -p "$RUNS"
rm -f "$RUNS"/*.json

count=$(psql "${PG[@]}" -d "$DB_NAME" -Atc "SELECT count(*) FROM products" 2>/dev/null || echo 0)
if [[ "$count" == 0 ]]; then
    log "seeding $PRODUCTS products into $DB_NAME"
    psql "${PG[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"
    DATABASE_URL="$DB_URL" RUST_LOG=warn "$BIN" seed --products "$PRODUCTS" >/dev/null
fi
# Migrations this binary needs (the cache migration on an older bench database).
DATABASE_URL="$DB_URL" RUST_LOG=warn "$BIN" migrate >/dev/null

start_gateway() { # port cache_enabled
    local log_file="$OUT/cache-gateway-$1.log"
    DATABASE_URL="$DB_URL" LISTEN_ADDR="127.0.0.1:$1" CACHE_ENABLED="$2" RATE_LIMIT_ENABLED=false \
        CACHE_KEY_PREFIX="bench-$$" AUTO_SEED_PRODUCTS=0 RUN_WORKERS=false RUST_LOG=warn \
        "$BIN" serve >"$log_file" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 300); do
        if curl -sf -o /dev/null "http://127.0.0.1:$1/readyz"; then
            if [[ "$2" == false ]] || curl -s "http://127.0.0.1:$1/readyz" | jq -e '.cache.listening' >/dev/null; then
                return 0
            fi
        fi
        sleep 0.1
    done
    cat "$log_file" >&2
    die "gateway on $1 did not start"
}
start_gateway "$CACHED" true
start_gateway "$UNCACHED" false

q2_handle=$(psql "${PG[@]}" -d "$DB_NAME" -Atc "SELECT handle FROM products WHERE status = 'ACTIVE' ORDER BY id LIMIT 1")
body() { python3 "$BENCH_DIR/bench.py" body "$2" "$3" "$OUT/cache-$1.json"; }
body q1 "$BENCH_DIR/queries/q1_gateway.graphql" "$(jq -nc --arg h "$Q1_HANDLE" '{handle: $h}')"
body q2 "$FIXTURES/getProduct.graphql" "$(jq -nc --arg h "$q2_handle" '{handle: $h}')"
body q3 "$FIXTURES/getProducts.graphql" '{}'

# Q1 as a persisted query: registered once by POST (APQ), then fetched by GET.
q1_hash=$(python3 -c 'import hashlib, json, sys; print(hashlib.sha256(json.load(open(sys.argv[1]))["query"].encode()).hexdigest())' "$OUT/cache-q1.json")
ext=$(jq -nc --arg h "$q1_hash" '{persistedQuery: {version: 1, sha256Hash: $h}}')
jq -c --argjson e "$ext" '. + {extensions: $e}' "$OUT/cache-q1.json" |
    curl -sf -H 'Content-Type: application/json' --data-binary @- "http://127.0.0.1:$CACHED/graphql" |
    jq -e '.errors == null' >/dev/null || die "registering Q1 as a persisted query failed"
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
q1_vars=$(jq -c .variables "$OUT/cache-q1.json")
q1_get="http://127.0.0.1:$CACHED/graphql?extensions=$(enc "$ext")&variables=$(enc "$q1_vars")"
curl -sf -D "$OUT/cache-q1-get.headers" -o "$OUT/cache-q1-get.body" "$q1_get" ||
    die "persisted GET of Q1 failed"
jq -e '.data.collection.products.edges | length == 24' "$OUT/cache-q1-get.body" >/dev/null ||
    die "the persisted GET of Q1 did not return 24 products"

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
    for phase in warmup run; do
        local d=$DURATION
        [[ $phase == warmup ]] && d=$WARMUP
        BENCH_METHOD=$method BENCH_BODY_FILE=$bodyfile timeout 120 \
            wrk -t2 -c"$CONNECTIONS" -d"$d" --timeout 10s --latency -s "$BENCH_DIR/lua/graphql.lua" "$url" \
            >"$RUNS/$name.$phase.txt" 2>&1 || { cat "$RUNS/$name.$phase.txt" >&2; die "wrk failed for $name"; }
    done
    grep '^BENCH_RESULT ' "$RUNS/$name.run.txt" | cut -d' ' -f2- >"$RUNS/$name.json"
    jq -r --arg n "$name" '"\($n): \(.rps|floor) req/s, p99 \(.p99_us/1000) ms, non-2xx \(.non2xx), errors \(.graphql_errors)"' "$RUNS/$name.json" >&2
}

log "wrk -t2 -c$CONNECTIONS, $WARMUP warm-up then $DURATION per case"
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
