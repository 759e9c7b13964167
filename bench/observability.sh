#!/usr/bin/env bash
# bench/observability.sh — what metrics and tracing cost, measured side by side in one
# run: storefront Q1 (bench/run.sh's query) against four gateways that differ only in
# observability — everything off; metrics on; metrics and tracing sampled at 10 %; and
# metrics and tracing at 100 % — each uncached (the database path: ~10 statements, each
# timed and traced) and cached (the in-process hit path, where a fixed per-request cost
# weighs most). Traced gateways export over OTLP/gRPC to a real receiver
# (examples/otlp_sink.rs), so exports are paid for. Rounds alternate the configurations
# to spread the machine's noise. Not part of CI. See bench/README.md.
#
# Needs: release builds of the gateway and the sink (this script builds the sink:
# cargo build --release --example otlp_sink), PostgreSQL on 127.0.0.1:5432, Redis on
# 127.0.0.1:6379, python3, curl, jq, wrk (installed with apt-get when missing). Uses the
# database cg_bench (seeded with BENCH_PRODUCTS products, default 10000, when missing).
#
# Environment (all optional): BENCH_DURATION (6s), BENCH_WARMUP (2s),
# BENCH_CONNECTIONS (32), BENCH_ROUNDS (5), BENCH_IGNORE_CARGO=1.
# Listens on 127.0.0.1:18201–18208 (gateways) and 18290 (OTLP sink).
# Results: bench/out/observability-results.md and bench/out/observability-runs/*.json.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
OUT="$BENCH_DIR/out"
RUNS="$OUT/observability-runs"
BIN="${GATEWAY_BIN:-$ROOT/target/release/commerce-gateway}"
SINK_BIN="$ROOT/target/release/examples/otlp_sink"
DB_NAME=cg_bench
DB_URL="postgres://postgres@127.0.0.1:5432/$DB_NAME"
PRODUCTS="${BENCH_PRODUCTS:-10000}"
DURATION="${BENCH_DURATION:-6s}"
WARMUP="${BENCH_WARMUP:-2s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
ROUNDS="${BENCH_ROUNDS:-5}"
SINK_PORT=18290
Q1_HANDLE=apparel
PG=(-X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres)
CONFIGS=(off metrics trace10 trace100)

log() { printf '[obs-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PIDS=()
cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

[[ -x "$BIN" ]] || die "no gateway binary at $BIN (cargo build --release)"
if [[ ! -x "$SINK_BIN" || "$ROOT/examples/otlp_sink.rs" -nt "$SINK_BIN" ]]; then
    log "building the OTLP sink (cargo build --release --example otlp_sink)"
    (cd "$ROOT" && cargo build -j 2 --release --example otlp_sink) >&2
fi
if pgrep -x cargo >/dev/null && [[ -z "${BENCH_IGNORE_CARGO:-}" ]]; then
    die "a cargo process is running (it competes for the 2 cores); set BENCH_IGNORE_CARGO=1 to run anyway"
fi
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null

mkdir -p "$RUNS"
rm -f "$RUNS"/*.json

count=$(psql "${PG[@]}" -d "$DB_NAME" -Atc "SELECT count(*) FROM products" 2>/dev/null || echo 0)
if [[ "$count" == 0 ]]; then
    log "seeding $PRODUCTS products into $DB_NAME"
    psql "${PG[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"
    DATABASE_URL="$DB_URL" RUST_LOG=warn "$BIN" seed --products "$PRODUCTS" >/dev/null
fi
DATABASE_URL="$DB_URL" RUST_LOG=warn "$BIN" migrate >/dev/null

# The receiver stands in for a collector on another machine: it runs at the lowest CPU
# priority so that decoding spans does not take the gateways' cores (BENCH_SINK_NICE=0
# lets it compete; its CPU time is reported either way).
nice -n "${BENCH_SINK_NICE:-19}" "$SINK_BIN" "127.0.0.1:$SINK_PORT" >"$OUT/observability-sink.log" 2>&1 &
SINK_PID=$!
PIDS+=("$SINK_PID")

port_of() { # config cached(true|false)
    local i
    for i in "${!CONFIGS[@]}"; do [[ "${CONFIGS[$i]}" == "$1" ]] && break; done
    if [[ "$2" == true ]]; then echo $((18201 + i)); else echo $((18205 + i)); fi
}

start_gateway() { # config cached
    local cfg=$1 cached=$2 port env=()
    port=$(port_of "$cfg" "$cached")
    case $cfg in
        off) env=(METRICS_ENABLED=false) ;;
        metrics) env=(METRICS_ENABLED=true) ;;
        trace10) env=(METRICS_ENABLED=true OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT"
                      OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_TRACES_SAMPLER=parentbased_traceidratio
                      OTEL_TRACES_SAMPLER_ARG=0.1) ;;
        trace100) env=(METRICS_ENABLED=true OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT"
                       OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_TRACES_SAMPLER=parentbased_always_on) ;;
    esac
    env "${env[@]}" DATABASE_URL="$DB_URL" LISTEN_ADDR="127.0.0.1:$port" CACHE_ENABLED="$cached" RATE_LIMIT_ENABLED=false \
        CACHE_KEY_PREFIX="obsbench-$$-$cfg" DATABASE_POOL_SIZE=8 AUTO_SEED_PRODUCTS=0 \
        RUN_WORKERS=false RUST_LOG=warn "$BIN" serve >"$OUT/observability-gateway-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 300); do
        if curl -sf -o /dev/null "http://127.0.0.1:$port/readyz"; then
            if [[ "$cached" == false ]] || curl -s "http://127.0.0.1:$port/readyz" | jq -e '.cache.listening' >/dev/null; then
                return 0
            fi
        fi
        sleep 0.1
    done
    cat "$OUT/observability-gateway-$port.log" >&2
    die "gateway $cfg (cached=$cached) did not start"
}
for cfg in "${CONFIGS[@]}"; do
    start_gateway "$cfg" false
    start_gateway "$cfg" true
done

python3 "$BENCH_DIR/bench.py" body "$BENCH_DIR/queries/q1_gateway.graphql" \
    "$(jq -nc --arg h "$Q1_HANDLE" '{handle: $h}')" "$OUT/observability-q1.json"

run() { # name url
    local name=$1 url=$2
    for phase in warmup run; do
        local d=$DURATION
        [[ $phase == warmup ]] && d=$WARMUP
        BENCH_BODY_FILE="$OUT/observability-q1.json" timeout 120 \
            wrk -t2 -c"$CONNECTIONS" -d"$d" --timeout 10s --latency -s "$BENCH_DIR/lua/graphql.lua" "$url" \
            >"$RUNS/$name.$phase.txt" 2>&1 || { cat "$RUNS/$name.$phase.txt" >&2; die "wrk failed for $name"; }
    done
    grep '^BENCH_RESULT ' "$RUNS/$name.run.txt" | cut -d' ' -f2- >"$RUNS/$name.json"
    jq -r --arg n "$name" '"\($n): \(.rps|floor) req/s, p99 \(.p99_us/1000) ms, non-2xx \(.non2xx), errors \(.graphql_errors)"' "$RUNS/$name.json" >&2
}

log "wrk -t2 -c$CONNECTIONS, $WARMUP warm-up then $DURATION per case, $ROUNDS rounds"
MODES="${BENCH_MODES:-false true}"
for round in $(seq 1 "$ROUNDS"); do
    for cached in $MODES; do
        for cfg in "${CONFIGS[@]}"; do
            label=$([[ $cached == true ]] && echo cached || echo uncached)
            run "${label}_${cfg}_r$round" "http://127.0.0.1:$(port_of "$cfg" "$cached")/graphql"
        done
    done
done
sleep 2
spans=$(tail -n1 "$OUT/observability-sink.log" | awk '{print $2}')
sink_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$SINK_PID/stat")
log "the OTLP sink used ${sink_cpu} CPU-seconds (nice ${BENCH_SINK_NICE:-19})"

python3 - "$RUNS" "$OUT/observability-results.md" "$CONNECTIONS" "$ROUNDS" "${spans:-0}" <<'PY'
import json, sys, pathlib, statistics
runs, out, conns, rounds, spans = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
r = {p.stem: json.loads(p.read_text()) for p in runs.glob("*.json")}
bad = [n for n, v in r.items() if v["non2xx"] or v["graphql_errors"]]
configs = ["off", "metrics", "trace10", "trace100"]
titles = {"off": "metrics and tracing off", "metrics": "metrics on", "trace10": "metrics + tracing 10 %", "trace100": "metrics + tracing 100 %"}
lines = []
modes = [m for m in ["uncached", "cached"] if any(k.startswith(m + "_") for k in r)]
for mode in modes:
    med = {c: statistics.median(r[f"{mode}_{c}_r{i}"]["rps"] for i in range(1, rounds + 1)) for c in configs}
    p99 = {c: statistics.median(r[f"{mode}_{c}_r{i}"]["p99_us"] for i in range(1, rounds + 1)) / 1000 for c in configs}
    # Each round runs the four configurations back to back: the ratio within a round is
    # the paired comparison, and its median across rounds the least noisy figure.
    paired = {c: statistics.median(r[f"{mode}_{c}_r{i}"]["rps"] / r[f"{mode}_off_r{i}"]["rps"] for i in range(1, rounds + 1)) for c in configs}
    lines += [f"**Q1 {mode}** ({rounds} rounds)", "", "| configuration | median req/s | ratio of medians | median of per-round ratios | p99 ms |", "|---|---:|---:|---:|---:|"]
    for c in configs:
        lines.append(f"| {titles[c]} | {med[c]:.0f} | {med[c] / med['off']:.3f} | {paired[c]:.3f} | {p99[c]:.2f} |")
    lines.append("")
lines.append(f"wrk -t2 -c{conns}; every response checked (non-2xx or GraphQL errors: {bad or 'none'}); the OTLP sink received {spans} spans.")
pathlib.Path(out).write_text("\n".join(lines) + "\n")
print("\n".join(lines))
if bad:
    sys.exit(f"failed requests in: {bad}")
PY
