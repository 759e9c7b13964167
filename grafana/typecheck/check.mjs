#!/usr/bin/env node
// Checks grafana/: run through scripts/check-grafana.sh (which installs node_modules first).
//
// 1. Type check. Each dashboard in grafana/dashboards/*.json is written into
//    generated/<name>.ts as
//        export const dashboard = <json> satisfies Json<ExportedDashboard>;
//    plus one constant per panel, checked against the panel type's published options and
//    field-config types (types.ts: Panels), and one per Explore trace link, checked against
//    the published TempoQuery; then `tsc --noEmit --strict -p tsconfig.json` must pass.
//    Every run also type-checks deliberately broken copies of a dashboard (generated/
//    selftest_*.ts) and fails unless tsc rejects each of them: proof that the check still
//    catches misspelt keys and wrong types at every level.
// 2. Datasources. Every datasource uid a dashboard uses (panels, targets, variables,
//    annotations, trace links) must be provisioned in grafana/provisioning/datasources/,
//    with the same type; so must every datasourceUid the provisioning itself refers to.
// 3. Provisioning YAML against provisioning.schema.json (JSON Schema 2020-12, ajv).
// 4. Dashboard conventions: uid/title/tags, the `instance` variable, unique panel ids,
//    units; every PromQL `expr` uses only metric names and labels from docs/metrics.md (and
//    a few exporter metrics), only the $instance (as instance=~"$instance") and
//    $__rate_interval variables, and legends name labels the query keeps; every panel that
//    shows latency or errors links to traces in Explore, with correctly encoded URLs.
//
// Exit status 0 when everything passes, 1 with one line per problem otherwise.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';
import YAML from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const grafanaDir = path.resolve(here, '..');
const repoRoot = path.resolve(grafanaDir, '..');
const dashboardsDir = path.join(grafanaDir, 'dashboards');
const provisioningDir = path.join(grafanaDir, 'provisioning');
const generatedDir = path.join(here, 'generated');
const catalogPath = path.join(repoRoot, 'docs', 'metrics.md');

const problems = [];
const problem = (where, msg) => problems.push(`${where}: ${msg}`);
const rel = (p) => path.relative(repoRoot, p);
const log = (msg) => console.log(`[check-grafana] ${msg}`);

// ------------------------------------------------------------------ inputs

function yamlFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

function readYaml(file) {
  const doc = YAML.parseDocument(fs.readFileSync(file, 'utf8'), { prettyErrors: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) problem(rel(file), `YAML: ${e.message}`);
    return null;
  }
  return doc.toJS();
}

const dashboardFiles = fs.existsSync(dashboardsDir)
  ? fs
      .readdirSync(dashboardsDir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => path.join(dashboardsDir, f))
  : [];
if (dashboardFiles.length === 0) problem(rel(dashboardsDir), 'no dashboards (*.json)');

const dashboards = [];
for (const file of dashboardFiles) {
  try {
    dashboards.push({ file, name: path.basename(file), json: JSON.parse(fs.readFileSync(file, 'utf8')) });
  } catch (e) {
    problem(rel(file), `not valid JSON: ${e.message}`);
  }
}

// ------------------------------------------------------------------ provisioning schema

const schema = JSON.parse(fs.readFileSync(path.join(here, 'provisioning.schema.json'), 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: true });
ajv.addSchema(schema);
const validators = {
  datasources: ajv.getSchema(`${schema.$id}#/$defs/datasourcesFile`),
  dashboards: ajv.getSchema(`${schema.$id}#/$defs/dashboardsFile`),
};

const provisioned = new Map(); // uid -> { type, name, file }
const provisioningRefs = []; // [where, uid]
const provisioningFiles = { datasources: yamlFiles(path.join(provisioningDir, 'datasources')), dashboards: yamlFiles(path.join(provisioningDir, 'dashboards')) };
for (const kind of ['datasources', 'dashboards']) {
  if (provisioningFiles[kind].length === 0) problem(rel(path.join(provisioningDir, kind)), 'no provisioning file (*.yml)');
  for (const file of provisioningFiles[kind]) {
    const data = readYaml(file);
    if (data === null) continue;
    const validate = validators[kind];
    if (!validate(data)) {
      for (const e of validate.errors) {
        const extra = e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : '';
        problem(rel(file), `schema: ${e.instancePath || '/'} ${e.message}${extra}`);
      }
    }
    if (kind !== 'datasources' || !Array.isArray(data?.datasources)) continue;
    for (const [i, ds] of data.datasources.entries()) {
      if (!ds || typeof ds.uid !== 'string') continue;
      if (provisioned.has(ds.uid)) problem(rel(file), `datasource uid "${ds.uid}" provisioned twice`);
      provisioned.set(ds.uid, { type: ds.type, name: ds.name, file });
      const jd = ds.jsonData ?? {};
      for (const key of ['tracesToMetrics', 'serviceMap', 'tracesToLogsV2', 'tracesToProfiles', 'lokiSearch']) {
        if (jd[key]?.datasourceUid) provisioningRefs.push([`${rel(file)} datasources[${i}].jsonData.${key}`, jd[key].datasourceUid]);
      }
      for (const [j, d] of (jd.exemplarTraceIdDestinations ?? []).entries()) {
        if (d?.datasourceUid) provisioningRefs.push([`${rel(file)} datasources[${i}].jsonData.exemplarTraceIdDestinations[${j}]`, d.datasourceUid]);
      }
    }
  }
}
for (const [where, uid] of provisioningRefs) {
  if (!provisioned.has(uid)) problem(where, `datasourceUid "${uid}" is not provisioned`);
}

// ------------------------------------------------------------------ metric catalog

// docs/metrics.md tables: | name | type | labels | meaning |
const catalog = new Map(); // series name -> Set(labels)
const HISTOGRAM_SERIES = ['_bucket', '_count', '_sum'];
function addMetric(name, type, labels) {
  const set = new Set(labels);
  if (type === 'histogram') {
    catalog.set(`${name}_bucket`, new Set([...set, 'le']));
    catalog.set(`${name}_count`, set);
    catalog.set(`${name}_sum`, set);
  } else {
    catalog.set(name, set);
  }
}
if (!fs.existsSync(catalogPath)) {
  problem(rel(catalogPath), 'metric catalog missing');
} else {
  const md = fs.readFileSync(catalogPath, 'utf8');
  for (const line of md.split('\n')) {
    const m = line.match(/^\|\s*(gateway_[a-z0-9_]+)\s*\|\s*(counter|gauge|histogram)\s*\|([^|]*)\|/);
    if (m) addMetric(m[1], m[2], m[3].split(',').map((s) => s.trim()).filter(Boolean));
  }
  // Prose sections: `process_*` names, and `gateway_build_info{version}`.
  for (const m of md.matchAll(/`(process_[a-z_]+)`/g)) addMetric(m[1], 'gauge', []);
  for (const m of md.matchAll(/`(gateway_[a-z0-9_]+)\{([a-z_, ]*)\}`/g)) {
    addMetric(m[1], 'gauge', m[2].split(',').map((s) => s.trim()).filter(Boolean));
  }
  if (catalog.size < 20) problem(rel(catalogPath), `only ${catalog.size} metrics parsed from the catalog`);
}
// Not ours, and certain to exist: Prometheus' own `up`, postgres_exporter, redis_exporter.
const EXPORTER_METRICS = {
  up: [],
  pg_up: [],
  pg_stat_database_numbackends: ['datid', 'datname'],
  redis_up: [],
  redis_memory_used_bytes: [],
  redis_memory_max_bytes: [],
};
for (const [name, labels] of Object.entries(EXPORTER_METRICS)) catalog.set(name, new Set(labels));
const TARGET_LABELS = ['instance', 'job'];

// ------------------------------------------------------------------ PromQL lint

const PROMQL_FUNCTIONS = new Set(
  ('sum min max avg count count_values group stddev stdvar topk bottomk quantile limitk ' +
    'rate irate increase delta idelta deriv predict_linear resets changes histogram_quantile ' +
    'abs ceil floor round sqrt exp ln log2 log10 clamp clamp_min clamp_max sgn vector scalar ' +
    'time timestamp absent absent_over_time sort sort_desc label_replace label_join ' +
    'avg_over_time min_over_time max_over_time sum_over_time count_over_time last_over_time ' +
    'quantile_over_time present_over_time').split(' '),
);
const PROMQL_KEYWORDS = new Set(
  'by without on ignoring group_left group_right and or unless bool offset inf nan atan2'.split(' '),
);
const ALLOWED_VARS = new Set(['$instance', '${instance}', '$__rate_interval']);

/** Lints one expression; returns { metrics, groupLabels } for the legend/link checks. */
function lintExpr(expr, where) {
  const vars = expr.match(/\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*/g) ?? [];
  for (const v of vars) {
    if (!ALLOWED_VARS.has(v)) problem(where, `template variable ${v} in expr (only $instance and $__rate_interval)`);
  }
  const instanceUses = vars.filter((v) => v === '$instance' || v === '${instance}').length;
  const instanceMatchers = (expr.match(/\binstance\s*=~\s*"\$\{?instance\}?"/g) ?? []).length;
  if (instanceUses !== instanceMatchers) problem(where, '$instance must only appear as instance=~"$instance"');
  for (const m of expr.matchAll(/\[([^\]]*)\]/g)) {
    if (m[1] !== '$__rate_interval') problem(where, `range [${m[1]}]: use [$__rate_interval]`);
  }
  let open = 0;
  for (const c of expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
    if (c === '(') open++;
    if (c === ')') open--;
    if (open < 0) break;
  }
  if (open !== 0) problem(where, 'unbalanced parentheses');

  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*/g, ' ');
  const metrics = new Set();
  // Selectors: name{matchers}
  for (const m of noStrings.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}/g)) {
    const name = m[1];
    if (!name || PROMQL_FUNCTIONS.has(name) || PROMQL_KEYWORDS.has(name)) {
      problem(where, `selector without a metric name: {${m[2]}}`);
      continue;
    }
    const labels = catalog.get(name);
    for (const lm of m[2].matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)/g)) {
      if (labels && !labels.has(lm[1]) && !TARGET_LABELS.includes(lm[1])) {
        problem(where, `${name} has no label "${lm[1]}" (docs/metrics.md)`);
      }
    }
  }
  // Grouping clauses.
  const groupLabels = [];
  for (const m of noStrings.matchAll(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const l of m[2].split(',').map((s) => s.trim()).filter(Boolean)) groupLabels.push([m[1], l]);
  }
  // Identifiers left once strings, matchers, ranges and grouping lists are gone.
  const bare = noStrings
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' $1 ');
  for (const m of bare.matchAll(/[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?|[A-Za-z_:][A-Za-z0-9_:]*/gi)) {
    const tok = m[0];
    if (/^[0-9.]/.test(tok)) continue;
    if (PROMQL_FUNCTIONS.has(tok) || PROMQL_KEYWORDS.has(tok)) continue;
    if (bare.slice(m.index + tok.length).trimStart()[0] === '(') {
      problem(where, `unknown function ${tok}()`);
      continue;
    }
    if (!catalog.has(tok)) {
      const base = HISTOGRAM_SERIES.some((s) => catalog.has(tok + s)) ? ' (a histogram: use _bucket, _count or _sum)' : '';
      problem(where, `metric ${tok} is not in docs/metrics.md${base}`);
      continue;
    }
    metrics.add(tok);
  }
  const known = new Set(TARGET_LABELS);
  for (const mname of metrics) for (const l of catalog.get(mname)) known.add(l);
  for (const [clause, l] of groupLabels) {
    if (!known.has(l)) problem(where, `${clause} (${l}): no metric in this expression has that label`);
  }
  return { metrics, groupLabels: groupLabels.filter(([c]) => c === 'by').map(([, l]) => l) };
}

/** Labels a series of this query keeps: its `by` labels, or all labels when nothing aggregates. */
function keptLabels(expr, info) {
  const aggregates = /\b(sum|min|max|avg|count|topk|bottomk|quantile|group|stddev|stdvar)\b\s*(by\s*\([^)]*\)\s*)?\(/.test(expr);
  if (aggregates) return new Set(info.groupLabels.filter((l) => l !== 'le'));
  const s = new Set(TARGET_LABELS);
  for (const m of info.metrics) for (const l of catalog.get(m)) s.add(l);
  return s;
}

// ------------------------------------------------------------------ trace links

const EXPLORE_URL_SAFE = /^[A-Za-z0-9\-_.~%!*'()/?=&]*$/;
const ALLOWED_LINK_VARS = /^(__from|__to|__field\.labels\.[a-z_]+(:percentencode)?)$/;

/** Validates a link URL; for an Explore link, returns its decoded panes for the type check. */
function checkLinkUrl(url, where, keptByAllTargets) {
  if (typeof url !== 'string') return null;
  if (url.includes('${DS_')) problem(where, 'link URL uses a ${DS_...} placeholder');
  if (!url.startsWith('/explore')) return null;
  const vars = [...url.matchAll(/\$\{([^}]*)\}/g)].map((m) => m[1]);
  for (const v of vars) {
    if (!ALLOWED_LINK_VARS.test(v)) problem(where, `link variable \${${v}} is not allowed`);
    const lab = v.match(/^__field\.labels\.([a-z_]+)/);
    if (lab && keptByAllTargets && !keptByAllTargets.has(lab[1])) {
      problem(where, `link uses \${__field.labels.${lab[1]}} but not every query of the panel keeps label "${lab[1]}"`);
    }
  }
  const literal = url.replace(/\$\{[^}]*\}/g, '');
  if (!EXPLORE_URL_SAFE.test(literal)) {
    problem(where, `link URL has characters that must be percent-encoded: ${[...new Set(literal.replace(/[A-Za-z0-9\-_.~%!*'()/?=&]/g, ''))].join(' ')}`);
  }
  const sample = url.replace(/\$\{(__from|__to)\}/g, '1700000000000').replace(/\$\{[^}]*\}/g, 'sample');
  let params;
  try {
    params = new URL(sample, 'http://grafana.invalid').searchParams;
  } catch (e) {
    problem(where, `link URL does not parse: ${e.message}`);
    return null;
  }
  if (params.get('schemaVersion') !== '1') problem(where, 'Explore link needs schemaVersion=1 (the panes URL form)');
  let panes;
  try {
    panes = JSON.parse(params.get('panes') ?? '');
  } catch (e) {
    problem(where, `Explore link: panes is not JSON once URL-decoded (${e.message})`);
    return null;
  }
  for (const [key, pane] of Object.entries(panes ?? {})) {
    const w = `${where} panes.${key}`;
    checkDatasourceUid(pane?.datasource, w, 'tempo');
    for (const q of pane?.queries ?? []) {
      checkDatasourceRef(q?.datasource, `${w}.queries`);
      if (typeof q?.query !== 'string' || !q.query.includes('resource.service.name="commerce-gateway"')) {
        problem(w, 'trace query must filter resource.service.name="commerce-gateway"');
      }
    }
  }
  return panes;
}

// ------------------------------------------------------------------ datasource refs

const BUILTIN = new Map([['-- Grafana --', 'grafana']]);

function checkDatasourceUid(uid, where, expectType) {
  if (typeof uid !== 'string') {
    problem(where, 'datasource uid missing');
    return;
  }
  if (uid.startsWith('${')) {
    problem(where, `datasource "${uid}" is a placeholder: use a provisioned uid`);
    return;
  }
  const ds = provisioned.get(uid);
  if (!ds) {
    problem(where, `datasource uid "${uid}" is not provisioned in grafana/provisioning/datasources`);
    return;
  }
  if (expectType && ds.type !== expectType) problem(where, `datasource uid "${uid}" is a ${ds.type} datasource, not ${expectType}`);
}

function checkDatasourceRef(ref, where) {
  if (ref === undefined || ref === null) return;
  if (typeof ref === 'string') {
    problem(where, `datasource given by name ("${ref}"): use {"type": ..., "uid": ...}`);
    return;
  }
  if (typeof ref !== 'object') {
    problem(where, 'datasource is neither an object nor null');
    return;
  }
  if (BUILTIN.has(ref.uid)) {
    if (ref.type !== BUILTIN.get(ref.uid)) problem(where, `built-in datasource ${ref.uid} must have type ${BUILTIN.get(ref.uid)}`);
    return;
  }
  checkDatasourceUid(ref.uid, where, ref.type);
  if (!ref.type) problem(where, `datasource ref {uid: "${ref.uid}"} has no type`);
}

function walkDatasources(node, where) {
  if (Array.isArray(node)) {
    node.forEach((x, i) => walkDatasources(x, `${where}[${i}]`));
  } else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'datasource') checkDatasourceRef(v, `${where}.datasource`);
      walkDatasources(v, `${where}.${k}`);
    }
  } else if (typeof node === 'string' && node.includes('${DS_')) {
    problem(where, 'uses a ${DS_...} placeholder');
  }
}

// ------------------------------------------------------------------ dashboard conventions

const UNITS = new Set(['s', 'ms', 'reqps', 'ops', 'opm', 'percentunit', 'short', 'bytes', 'none']);
// Field matcher and transformation ids (Grafana's FieldMatcherID / DataTransformerID); their
// options are typed `unknown`/`any` in the schema, so only the ids are checked.
const MATCHERS = new Set(['byName', 'byRegexp', 'byType', 'byFrameRefID', 'byValue', 'byNames']);
const TRANSFORMATIONS = new Set(['organize', 'merge', 'reduce', 'labelsToFields', 'seriesToRows', 'sortBy', 'filterFieldsByName', 'joinByField', 'calculateField', 'renameByRegex']);
const PANEL_TYPES = new Set(['timeseries', 'stat', 'bargauge', 'state-timeline', 'table', 'text', 'row']);
// Series that are latency or errors: such a panel must link to traces.
const NEEDS_TRACES =
  /histogram_quantile\(.*_seconds_bucket|errors_total|status_class="5xx"|outcome!="(success|completed)"|outcome="(rejected|throttled)"|outcome=~"[^"]*(error|dead|retry|declined|failed)|state="dead"/;

const seenUids = new Map();
const linkChecks = []; // { dashboard, where, panes }

function flatPanels(panels) {
  const out = [];
  for (const p of panels ?? []) {
    out.push(p);
    if (p?.type === 'row') out.push(...(p.panels ?? []));
  }
  return out;
}

for (const d of dashboards) {
  const j = d.json;
  const W = d.name;
  if (typeof j.uid !== 'string' || !/^[a-z0-9-]{1,40}$/.test(j.uid)) problem(W, 'uid must be a stable lower-case id');
  else if (seenUids.has(j.uid)) problem(W, `uid "${j.uid}" also used by ${seenUids.get(j.uid)}`);
  else seenUids.set(j.uid, W);
  if (typeof j.title !== 'string' || !j.title) problem(W, 'title missing');
  if (!Array.isArray(j.tags) || !j.tags.includes('commerce-gateway')) problem(W, 'tags must include "commerce-gateway"');
  if (!(Number.isInteger(j.schemaVersion) && j.schemaVersion >= 39)) problem(W, 'schemaVersion must be an integer >= 39');
  if (j.id !== undefined && j.id !== null) problem(W, 'id must be null (provisioned dashboards get theirs from Grafana)');
  const vars = j.templating?.list ?? [];
  const inst = vars.find((v) => v.name === 'instance');
  if (!inst) problem(W, 'templating variable "instance" missing');
  else {
    const q = typeof inst.query === 'string' ? inst.query : inst.query?.query;
    if (inst.type !== 'query' || !/^label_values\(\s*gateway_build_info\s*,\s*instance\s*\)$/.test(q ?? '')) {
      problem(W, 'variable instance must be the query label_values(gateway_build_info, instance)');
    }
    if (inst.multi !== true || inst.includeAll !== true) problem(W, 'variable instance must be multi with All');
    if (inst.allValue !== '.*') problem(W, 'variable instance: allValue must be ".*"');
  }
  for (const v of vars) if (v.name !== 'instance') problem(W, `variable ${v.name}: the dashboards' PromQL may only use $instance`);
  walkDatasources(j, W);

  const ids = new Set();
  for (const p of flatPanels(j.panels)) {
    const P = `${W} › panel ${p?.id} "${p?.title ?? ''}"`;
    if (!Number.isInteger(p?.id)) problem(P, 'panel id missing');
    else if (ids.has(p.id)) problem(P, 'duplicate panel id');
    else ids.add(p.id);
    if (!PANEL_TYPES.has(p?.type)) problem(P, `panel type ${p?.type} has no typed check (types.ts Panels)`);
    if (!p?.gridPos) problem(P, 'gridPos missing');
    if (p?.type === 'row') continue;
    for (const o of p?.fieldConfig?.overrides ?? []) {
      if (!MATCHERS.has(o?.matcher?.id)) problem(P, `override matcher "${o?.matcher?.id}" (use one of ${[...MATCHERS].join(', ')})`);
    }
    for (const t of p?.transformations ?? []) {
      if (!TRANSFORMATIONS.has(t?.id)) problem(P, `transformation "${t?.id}" (known: ${[...TRANSFORMATIONS].join(', ')})`);
    }
    const unit = p?.fieldConfig?.defaults?.unit;
    if (p?.type !== 'text' && p?.type !== 'table' && !UNITS.has(unit)) problem(P, `unit "${unit}" (use one of ${[...UNITS].join(', ')})`);
    const exprs = [];
    let kept = null;
    for (const t of p?.targets ?? []) {
      const T = `${P} target ${t?.refId}`;
      if (typeof t?.expr !== 'string' || !t.expr.trim()) {
        problem(T, 'expr missing');
        continue;
      }
      exprs.push(t.expr);
      const info = lintExpr(t.expr, T);
      const keep = keptLabels(t.expr, info);
      kept = kept === null ? keep : new Set([...kept].filter((l) => keep.has(l)));
      for (const m of (t.legendFormat ?? '').matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)) {
        if (!keep.has(m[1])) problem(T, `legend {{${m[1]}}}: the query does not keep label ${m[1]}`);
      }
    }
    const links = [
      ...(p?.links ?? []).map((l, i) => [l, `${P} links[${i}]`]),
      ...(p?.fieldConfig?.defaults?.links ?? []).map((l, i) => [l, `${P} fieldConfig.defaults.links[${i}]`]),
    ];
    let traceLinks = 0;
    for (const [l, where] of links) {
      const panes = checkLinkUrl(l?.url, where, kept);
      if (panes) {
        traceLinks++;
        linkChecks.push({ dashboard: d.name, where, panes });
      }
    }
    if (exprs.some((e) => NEEDS_TRACES.test(e)) && traceLinks === 0) {
      problem(P, 'shows latency or errors but has no link to traces (panel links or data links to /explore on tempo)');
    }
  }
}

// ------------------------------------------------------------------ type check (tsc)

function clone(x) {
  return JSON.parse(JSON.stringify(x));
}

/** An override property {id: "custom.lineStyle", value: v} as the field config {custom: {lineStyle: v}}. */
function overrideObject(prop) {
  const keys = String(prop?.id ?? '').split('.');
  let obj = prop?.value;
  for (const k of keys.reverse()) obj = { [k]: obj };
  return obj;
}

/** TypeScript source for one dashboard: the whole, each panel by type, each trace link. */
function tsSource(name, json, links) {
  const lines = [
    `// Generated by grafana/typecheck/check.mjs from grafana/dashboards/${name}. Do not edit.`,
    "import type { ExplorePane, ExportedDashboard, FieldOverride, Json, Panels } from '../types';",
    '',
  ];
  const markers = []; // [first line (1-based), description]
  const emit = (desc, text) => {
    markers.push([lines.length + 1, desc]);
    lines.push(...text.split('\n'));
  };
  emit(`${name} (dashboard)`, `export const dashboard = ${JSON.stringify(json, null, 2)} satisfies Json<ExportedDashboard>;`);
  flatPanels(json.panels).forEach((p, i) => {
    const type = PANEL_TYPES.has(p?.type) ? p.type : String(p?.type);
    const desc = `${name} › panel ${p?.id} "${p?.title ?? ''}"`;
    const T = `Panels[${JSON.stringify(type)}]`;
    emit(desc, `export const panel_${i} = ${JSON.stringify(p, null, 2)} satisfies Json<${T}>;`);
    const overrides = (p?.fieldConfig?.overrides ?? []).flatMap((o) => (o?.properties ?? []).map(overrideObject));
    if (overrides.length > 0) {
      emit(`${desc} fieldConfig.overrides`, `export const panel_${i}_overrides = ${JSON.stringify(overrides, null, 2)} satisfies Array<Json<FieldOverride<${T}>>>;`);
    }
  });
  links.forEach((l, i) => {
    emit(l.where, `export const link_${i} = ${JSON.stringify(l.panes, null, 2)} satisfies Record<string, Json<ExplorePane>>;`);
  });
  return { text: lines.join('\n') + '\n', markers };
}

// Deliberate mistakes, each of which tsc must reject.
const SELF_TESTS = [
  ['schemaVersion is a string', (d) => { d.schemaVersion = '39'; }],
  ['schemaVersion missing', (d) => { delete d.schemaVersion; }],
  ['dashboard key misspelt (titel)', (d) => { d.titel = d.title; }],
  ['panel key misspelt (gridPoss)', (d, f) => { const p = f('timeseries'); p.gridPoss = p.gridPos; delete p.gridPos; }],
  ['row key on a panel (collapsed)', (d, f) => { f('stat').collapsed = false; }],
  ['row: collapsed is a string', (d, f) => { f('row').collapsed = 'false'; }],
  ['fieldConfig.defaults key misspelt (unitt)', (d, f) => { f('timeseries').fieldConfig.defaults.unitt = 's'; }],
  ['thresholds mode not an enum value', (d, f) => { f('stat').fieldConfig.defaults.thresholds.mode = 'absolut'; }],
  ['timeseries custom key misspelt (lineWidht)', (d, f) => { f('timeseries').fieldConfig.defaults.custom.lineWidht = 1; }],
  ['timeseries options key misspelt (legendd)', (d, f) => { f('timeseries').options.legendd = {}; }],
  ['timeseries legend.displayMode not an enum value', (d, f) => { f('timeseries').options.legend.displayMode = 'lists'; }],
  ['stat reduceOptions.calcs not an array', (d, f) => { f('stat').options.reduceOptions.calcs = 'lastNotNull'; }],
  ['stat option missing (textMode)', (d, f) => { delete f('stat').options.textMode; }],
  ['table cellOptions type unknown', (d, f) => { f('table').fieldConfig.defaults.custom.cellOptions.type = 'autoo'; }],
  ['target key misspelt (exrp)', (d, f) => { const t = f('timeseries').targets[0]; t.exrp = t.expr; delete t.expr; }],
  ['target format not a Prometheus format', (d, f) => { f('timeseries').targets[0].format = 'timeseries'; }],
  ['data link key misspelt (tittle)', (d, f) => { const l = f('timeseries', true).fieldConfig.defaults.links[0]; l.tittle = l.title; delete l.title; }],
  ['panel link without type', (d, f) => { delete f('stat', false, true).links[0].type; }],
  ['panel link as a data link, key misspelt (ulr)', (d, f) => { f('stat', false, true).links[0] = { title: 'x', ulr: '/explore' }; }],
  ['variable key misspelt (multii)', (d) => { d.templating.list[0].multii = true; }],
  ['variable refresh not an enum value', (d) => { d.templating.list[0].refresh = 5; }],
  ['unknown panel type', (d, f) => { f('stat').type = 'stats'; }],
  ['override property misspelt (custom.lineWidht)', (d, f) => {
    f('timeseries').fieldConfig.overrides.push({ matcher: { id: 'byName', options: 'x' }, properties: [{ id: 'custom.lineWidht', value: 2 }] });
  }],
  ['override value of the wrong type (color)', (d, f) => {
    f('timeseries').fieldConfig.overrides.push({ matcher: { id: 'byName', options: 'x' }, properties: [{ id: 'color', value: 'red' }] });
  }],
];
const SELF_TEST_LINK = ['Explore link: tableType not an enum value', (panes) => { Object.values(panes)[0].queries[0].tableType = 'trace'; }];

function selfTestSources() {
  const base = dashboards.find((d) => {
    const ps = flatPanels(d.json.panels);
    return ['timeseries', 'stat', 'table', 'row'].every((t) => ps.some((p) => p.type === t)) && linkChecks.some((l) => l.dashboard === d.name);
  });
  if (!base) {
    problem('self-test', 'no dashboard has timeseries, stat, table and row panels and a trace link to mutate');
    return [];
  }
  const out = [];
  for (const [desc, mutate] of SELF_TESTS) {
    const j = clone(base.json);
    const find = (type, withDataLinks = false, withPanelLinks = false) => {
      const p = flatPanels(j.panels).find(
        (x) => x.type === type && (!withDataLinks || x.fieldConfig?.defaults?.links?.length) && (!withPanelLinks || x.links?.length),
      );
      if (!p) throw new Error(`self-test "${desc}": ${base.name} has no such ${type} panel`);
      return p;
    };
    mutate(j, find);
    out.push({ desc, src: tsSource(base.name, j, []) });
  }
  const link = clone(linkChecks.find((l) => l.dashboard === base.name));
  SELF_TEST_LINK[1](link.panes);
  out.push({ desc: SELF_TEST_LINK[0], src: tsSource(base.name, { schemaVersion: 39 }, [link]) });
  return out;
}

function runTsc() {
  fs.rmSync(generatedDir, { recursive: true, force: true });
  fs.mkdirSync(generatedDir, { recursive: true });
  const files = new Map(); // generated file name -> { markers, selfTest }
  for (const d of dashboards) {
    const base = d.name.replace(/\.json$/, '');
    const { text, markers } = tsSource(d.name, d.json, linkChecks.filter((l) => l.dashboard === d.name));
    fs.writeFileSync(path.join(generatedDir, `${base}.ts`), text);
    files.set(`${base}.ts`, { markers, selfTest: null });
  }
  let selfTests = [];
  try {
    selfTests = selfTestSources();
  } catch (e) {
    problem('self-test', e.message);
  }
  selfTests.forEach((t, i) => {
    const f = `selftest_${String(i + 1).padStart(2, '0')}.ts`;
    fs.writeFileSync(path.join(generatedDir, f), `// SELF-TEST (must fail): ${t.desc}\n${t.src.text}`);
    files.set(f, { markers: t.src.markers.map(([l, d]) => [l + 1, d]), selfTest: t.desc });
  });

  const tsc = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--pretty', 'false', '-p', path.join(here, 'tsconfig.json')], {
    cwd: here,
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.error) {
    problem('tsc', r.error.message);
    return;
  }
  const output = `${r.stdout}${r.stderr}`;
  const caught = new Set();
  let current = null;
  for (const line of output.split('\n')) {
    const m = line.match(/^generated[\\/]([^(]+)\((\d+),(\d+)\): (error .*)$/);
    if (m) {
      const info = files.get(m[1]);
      current = info;
      if (info?.selfTest) {
        caught.add(m[1]);
        continue;
      }
      const marker = (info?.markers ?? []).filter(([l]) => l <= Number(m[2])).pop();
      problem(`tsc ${marker ? marker[1] : m[1]} (generated/${m[1]}:${m[2]})`, m[4]);
    } else if (line.trim() && !(current?.selfTest)) {
      if (/^\s/.test(line) && problems.length > 0) problems[problems.length - 1] += `\n    ${line.trim()}`;
      else if (!/^\s/.test(line)) problem('tsc', line);
    }
  }
  // 1 or 2: diagnostics reported (the self-tests always produce some); anything else failed.
  if (r.status === null || r.status > 2) problem('tsc', `did not finish (status ${r.status}, signal ${r.signal})`);
  for (const [f, info] of files) {
    if (info.selfTest && !caught.has(f)) {
      problem(`self-test generated/${f}`, `tsc accepted a deliberate mistake (${info.selfTest}): the type check no longer catches it`);
    }
  }
  log(`type check: ${dashboards.length} dashboards, ${linkChecks.length} trace links; ${caught.size}/${selfTests.length} deliberate mistakes rejected by tsc`);
}

// ------------------------------------------------------------------ run

log(`datasources provisioned: ${[...provisioned.entries()].map(([u, d]) => `${u} (${d.type})`).join(', ') || 'none'}`);
if (dashboards.length > 0) runTsc();
if (problems.length > 0) {
  console.error(`[check-grafana] FAILED: ${problems.length} problem(s)`);
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
log(`OK: ${dashboards.length} dashboards, ${provisioningFiles.datasources.length + provisioningFiles.dashboards.length} provisioning files`);
