// Types the generated checks (generated/*.ts, written by check.mjs) test the dashboards
// against. Everything here comes from @grafana/schema except what it does not publish:
// the Prometheus query model (PromQuery) and the Explore URL state (ExplorePane), which
// are written out below from Grafana's source and marked as such.
import type {
  Dashboard,
  DashboardLink,
  DataQuery,
  DataSourceRef,
  FieldConfig,
  MatcherConfig,
  Panel,
  RowPanel,
  TableFooterOptions,
  VariableModel,
} from '@grafana/schema';
import type { DataLink } from '@grafana/schema/dist/esm/schema/dashboard/v2alpha0/types.gen.js';
import type * as BarGauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen.js';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen.js';
import type * as StateTimeline from '@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen.js';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen.js';
import type * as Text from '@grafana/schema/dist/esm/raw/composable/text/panelcfg/x/TextPanelCfg_types.gen.js';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen.js';
import type { TempoQuery } from '@grafana/schema/dist/esm/raw/composable/tempo/dataquery/x/TempoDataQuery_types.gen.js';

/**
 * The JSON spelling of a schema type. JSON cannot name a TypeScript enum member, and a
 * string enum accepts only its members (`ThresholdsMode.Absolute`, not `"absolute"`), so
 * every string enum becomes the union of its values (`${E}`). Objects stay objects with
 * the same keys and optionality, so excess-property checks still apply at every level;
 * numeric enums accept their number literals as they are.
 */
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

/**
 * A Prometheus query (panel target). Not published in @grafana/schema (it lives in
 * @grafana/prometheus, packages/grafana-prometheus/src/dataquery.cue); these are the
 * fields of that model that a dashboard target can carry.
 */
export interface PromQuery extends Omit<DataQuery, 'datasource'> {
  datasource?: DataSourceRef;
  expr: string;
  legendFormat?: string;
  range?: boolean;
  instant?: boolean;
  exemplar?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  editorMode?: 'code' | 'builder';
  interval?: string;
  intervalFactor?: number;
}

/** Field config whose `custom` block is the panel plugin's own, and typed data links. */
export interface TypedFieldConfig<C> extends Omit<FieldConfig, 'custom' | 'links'> {
  custom?: C;
  links?: DataLink[];
}

export interface TypedFieldConfigSource<C> {
  defaults: TypedFieldConfig<C>;
  overrides: Array<{
    matcher: MatcherConfig;
    properties: Array<{ id: string; value?: unknown }>;
  }>;
}

/**
 * Where what Grafana 11 itself exports disagrees with @grafana/schema, the export wins, so
 * that a dashboard exported from the UI passes unchanged; nothing else is loosened:
 * - query variables carry `definition` (the query as text), absent from VariableModel;
 * - panel links are written by the panel editor as data links ({title, url, targetBlank}),
 *   while the schema types them as DashboardLink;
 * - the table footer's `fields` is exported as "" when no field is picked, typed string[].
 */
/** T, with U's other keys forbidden: makes `T | U` exclusive, so a half of each fails. */
type Only<T, U> = T & { [K in Exclude<keyof U, keyof T>]?: never };
export type PanelLink = Only<DashboardLink, DataLink> | Only<DataLink, DashboardLink>;
export interface ExportedVariable extends VariableModel {
  definition?: string;
}
export interface ExportedPanel extends Omit<Panel, 'links'> {
  links?: PanelLink[];
}
export interface ExportedRowPanel extends Omit<RowPanel, 'panels'> {
  panels: ExportedPanel[];
}
export interface ExportedDashboard extends Omit<Dashboard, 'templating' | 'panels'> {
  panels?: Array<ExportedPanel | ExportedRowPanel>;
  templating?: { list?: ExportedVariable[] };
}
interface TableOptions extends Omit<Table.Options, 'footer'> {
  footer?: Omit<TableFooterOptions, 'fields'> & { fields?: string[] | '' };
}

/**
 * A panel of one plugin type: Panel from @grafana/schema, with `options` and
 * `fieldConfig.defaults.custom` narrowed from `Record<string, unknown>` to the plugin's
 * published types and `targets` to Prometheus queries. Options and fieldConfig are
 * required, as in every dashboard Grafana exports.
 */
export interface TypedPanel<T extends string, O, C = never>
  extends Omit<ExportedPanel, 'type' | 'options' | 'fieldConfig' | 'targets'> {
  type: T;
  options: O;
  fieldConfig: TypedFieldConfigSource<C>;
  targets?: PromQuery[];
}

/**
 * What one field override may set: each override property `{"id": "custom.lineStyle",
 * "value": ...}` is checked as the partial field config `{custom: {lineStyle: ...}}` of its
 * panel type (check.mjs turns the dotted id into nested keys).
 */
export type FieldOverride<P> = P extends { fieldConfig: TypedFieldConfigSource<infer C> }
  ? Partial<Omit<TypedFieldConfig<C>, 'custom'>> & { custom?: Partial<C> }
  : never;

/** The panel types the dashboards may use; check.mjs refuses any other. */
export interface Panels {
  timeseries: TypedPanel<'timeseries', TimeSeries.Options, TimeSeries.FieldConfig>;
  stat: TypedPanel<'stat', Stat.Options>;
  bargauge: TypedPanel<'bargauge', BarGauge.Options>;
  'state-timeline': TypedPanel<'state-timeline', StateTimeline.Options, StateTimeline.FieldConfig>;
  table: TypedPanel<'table', TableOptions, Table.FieldConfig>;
  text: TypedPanel<'text', Text.Options>;
  row: ExportedRowPanel;
}

/**
 * The `panes` state of an Explore URL (`/explore?schemaVersion=1&panes=...`), decoded
 * from each trace link. Grafana's ExploreUrlState (public/app/types/explore.ts) is not in
 * @grafana/schema; the query inside is the published TempoQuery.
 */
export interface ExplorePane {
  datasource: string;
  queries: Array<Omit<TempoQuery, 'datasource'> & { datasource: DataSourceRef }>;
  range: { from: string; to: string };
}
