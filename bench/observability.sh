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

BENCH_LOG_TAG="obs-bench"
# bench/lib.sh: BENCH_DIR, ROOT, OUT, BIN (GATEWAY_BIN), PRODUCTS (BENCH_PRODUCTS), PG, PG_URL,
# Q1_HANDLE; logging, the exit trap, the cargo guard, wrk, seeding, servers, wrk runs.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS="$OUT/observability-runs"
SINK_BIN="$ROOT/target/release/examples/otlp_sink"
DB_NAME=cg_bench
DB_URL="$PG_URL/$DB_NAME"
DURATION="${BENCH_DURATION:-6s}"
WARMUP="${BENCH_WARMUP:-2s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
ROUNDS="${BENCH_ROUNDS:-5}"
SINK_PORT=18290
CONFIGS=(off metrics trace10 trace100)

require_gateway_bin
if [[ ! -x "$SINK_BIN" || "$ROOT/examples/otlp_sink.rs" -nt "$SINK_BIN" ]]; then
    bench_log "building the OTLP sink (cargo build --release --example otlp_sink)"
    (cd "$ROOT" && cargo build -j 2 --release --example otlp_sink) >&2
fi
require_quiet_machine
ensure_tool wrk

fresh_runs_dir "$RUNS"

ensure_bench_db "$DB_NAME"

# The receiver stands in for a collector on another machine: it runs at the lowest CPU
# priority so that decoding spans does not take the gateways' cores (BENCH_SINK_NICE=0
# lets it compete; its CPU time is reported either way).
bench_spawn "$OUT/observability-sink.log" nice -n "${BENCH_SINK_NICE:-19}" "$SINK_BIN" "127.0.0.1:$SINK_PORT"
SINK_PID=$BENCH_LAST_PID

port_of() { # config cached(true|false)
    local i
    for i in "${!CONFIGS[@]}"; do [[ "${CONFIGS[$i]}" == "$1" ]] && break; done
    if [[ "$2" == true ]]; then echo $((18201 + i)); else echo $((18205 + i)); fi
}

gateway() { # config cached
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
    start_gateway "observability-gateway-$port" "$port" "${env[@]}" DATABASE_URL="$DB_URL" CACHE_ENABLED="$cached" \
        RATE_LIMIT_ENABLED=false CACHE_KEY_PREFIX="obsbench-$$-$cfg" DATABASE_POOL_SIZE=8 RUN_WORKERS=false
}
for cfg in "${CONFIGS[@]}"; do
    gateway "$cfg" false
    gateway "$cfg" true
done

write_q1_body "$OUT/observability-q1.json"

bench_log "wrk -t2 -c$CONNECTIONS, $WARMUP warm-up then $DURATION per case, $ROUNDS rounds"
MODES="${BENCH_MODES:-false true}"
for round in $(seq 1 "$ROUNDS"); do
    for cached in $MODES; do
        for cfg in "${CONFIGS[@]}"; do
            label=$([[ $cached == true ]] && echo cached || echo uncached)
            wrk_case "${label}_${cfg}_r$round" "http://127.0.0.1:$(port_of "$cfg" "$cached")/graphql" "$CONNECTIONS" \
                BENCH_BODY_FILE="$OUT/observability-q1.json"
        done
    done
done
sleep 2
spans=$(tail -n1 "$OUT/observability-sink.log" | awk '{print $2}')
sink_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$SINK_PID/stat")
bench_log "the OTLP sink used ${sink_cpu} CPU-seconds (nice ${BENCH_SINK_NICE:-19})"

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
