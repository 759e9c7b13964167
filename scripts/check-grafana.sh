#!/usr/bin/env bash
# scripts/check-grafana.sh — static checks of grafana/ (no Grafana server needed).
#
# Usage: scripts/check-grafana.sh        (from any directory; no terminal needed)
#
#   1. Installs grafana/typecheck/node_modules with `npm ci` when it is missing or older
#      than package-lock.json (pinned @grafana/schema, typescript, ajv, yaml).
#   2. Runs grafana/typecheck/check.mjs, which
#      - type-checks every grafana/dashboards/*.json against @grafana/schema with
#        `tsc --noEmit --strict` (whole dashboard, each panel against its plugin's options
#        and field-config types, each Explore trace link against TempoQuery), and proves on
#        every run that tsc still rejects deliberately broken copies;
#      - checks that every datasource uid the dashboards use is provisioned in
#        grafana/provisioning/datasources/*.yml (with the same type);
#      - validates the provisioning YAML against grafana/typecheck/provisioning.schema.json;
#      - lints the PromQL: metric names and labels from docs/metrics.md, only the
#        $instance / $__rate_interval variables, legends, units, trace links.
#
# Exit status: 0 when everything passes; 1 on any problem (listed on stderr); 2 when the
# tools are missing or cannot be installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TYPECHECK="$ROOT/grafana/typecheck"

say() { printf '[check-grafana] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

command -v node >/dev/null 2>&1 || die "node is not installed (Node.js >= 18 is needed: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (apt-get install npm)"
major="$(node -p 'process.versions.node.split(".")[0]')"
((major >= 18)) || die "Node.js $(node --version) is too old: >= 18 is needed"
[[ -f "$TYPECHECK/package-lock.json" ]] || die "grafana/typecheck/package-lock.json is missing"

# One run at a time: runs share grafana/typecheck/generated and node_modules.
exec 9>"$TYPECHECK/.check.lock"
flock -w 600 9 || die "another check-grafana run holds $TYPECHECK/.check.lock"

marker="$TYPECHECK/node_modules/.package-lock.json"
if [[ ! -f "$marker" || "$TYPECHECK/package-lock.json" -nt "$marker" ]]; then
    say "installing grafana/typecheck/node_modules (npm ci)"
    if ! (cd "$TYPECHECK" && timeout 600 npm ci --no-audit --no-fund --loglevel=error </dev/null >&2); then
        die "npm ci failed in grafana/typecheck (is the npm registry reachable?)"
    fi
fi

if ! timeout 600 node "$TYPECHECK/check.mjs" </dev/null; then
    say "FAILED: see the problems above (dashboards: grafana/dashboards, provisioning: grafana/provisioning)"
    exit 1
fi
