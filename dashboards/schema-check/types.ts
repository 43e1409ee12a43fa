// Typed views of a dashboard JSON model, built from @grafana/schema's own types.
//
// `Dashboard` alone types panel `options`, `fieldConfig.defaults.custom` and `targets` as open
// records, so it would accept a misspelled option. `PanelOf<"timeseries">` narrows each panel to its
// plugin's generated panelcfg types (the same ones Grafana's frontend uses) and each target to a
// Prometheus query, so wrong keys, wrong types and bad enum values all fail `tsc --noEmit`.
import type { Dashboard, DataQuery, FieldConfig, FieldConfigSource, Panel, RowPanel } from '@grafana/schema';
import type * as bargauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type * as heatmap from '@grafana/schema/dist/esm/raw/composable/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen';
import type * as stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as timeseries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

// JSON carries an enum's value ("list"), never the enum member (LegendDisplayMode.List): map every
// string enum to the union of its values, recursively. Numeric enums already accept number literals.
export type Literal<T> = T extends string
  ? string extends T ? string : `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends Array<infer U>
      ? Array<Literal<U>>
      : T extends object
        ? { [K in keyof T]: Literal<T[K]> }
        : T;

// Grafana's Prometheus query model (public/app/plugins/datasource/prometheus/dataquery.cue); the
// package ships no type for it, so the fields we use are spelled out here and nothing else is allowed.
export interface PrometheusQuery extends DataQuery {
  expr: string;
  legendFormat?: string;
  range?: boolean;
  instant?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  interval?: string;
  editorMode?: 'code' | 'builder';
  exemplar?: boolean;
}

interface PanelPlugins {
  timeseries: { options: timeseries.Options; custom: timeseries.FieldConfig };
  stat: { options: stat.Options; custom: Record<string, never> };
  bargauge: { options: bargauge.Options; custom: Record<string, never> };
  heatmap: { options: heatmap.Options; custom: heatmap.FieldConfig };
}

export type PanelType = keyof PanelPlugins;

export type PanelOf<K extends PanelType> = Literal<
  Omit<Panel, 'type' | 'options' | 'fieldConfig' | 'targets'> & {
    type: K;
    options: PanelPlugins[K]['options'];
    fieldConfig: {
      defaults: Omit<FieldConfig, 'custom'> & { custom?: PanelPlugins[K]['custom'] };
      overrides: FieldConfigSource['overrides'];
    };
    targets: PrometheusQuery[];
  }
>;

export type Row = Literal<RowPanel> & { type: 'row' };

export type TypedDashboard = Literal<Omit<Dashboard, 'panels'>> & {
  panels: Array<PanelOf<PanelType> | Row>;
};

// The typed dashboard must still be a plain Grafana `Dashboard` once enums are taken into account.
export type CheckAssignable<T extends Literal<Dashboard>> = T;
