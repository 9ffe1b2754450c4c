// Type-checks a Grafana dashboard JSON file against Grafana's published schema types
// (@grafana/schema on npm) with `tsc --strict`. Used by scripts/check-dashboards.
//
//   node scripts/dashboard-schema-check.mjs DASHBOARD.json SCHEMA_DIR TSC full|base
//
// SCHEMA_DIR is an npm prefix holding @grafana/schema; the generated .ts goes into a fresh
// directory below it so that `@grafana/schema` resolves there, and is removed afterwards.
//   full: the dashboard, every panel's plugin options and custom field config (timeseries,
//         stat, bargauge, table) against the panel plugins' own types. For recent schemas.
//   base: the dashboard and every target against the Prometheus query type. For the oldest
//         supported Grafana, whose plugin option types lack later (ignored) fields.
// The JSON is embedded as object literals with `satisfies`, so string literals keep their
// literal types and unknown keys are excess-property errors. Grafana's string enums become
// the unions of their values (JSON has no enum references). Negative controls, each with
// `@ts-expect-error`, prove the types are really enforced: if a type silently became `any`
// the unused directive fails the check.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const [dashboardPath, schemaDir, tsc, mode] = process.argv.slice(2);
if (!dashboardPath || !schemaDir || !tsc || !['full', 'base'].includes(mode)) {
  console.error('usage: dashboard-schema-check.mjs DASHBOARD.json SCHEMA_DIR TSC full|base');
  process.exit(2);
}
const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8'));

const cfg = (plugin, file) => `@grafana/schema/dist/esm/raw/composable/${plugin}/panelcfg/x/${file}_types.gen`;
const promQuery =
  '@grafana/schema/dist/esm/raw/composable/prometheus/dataquery/x/PrometheusDataQuery_types.gen';

// Panel plugin -> [options type, custom field config type or 'never'].
const plugins = {
  timeseries: ['TimeseriesOptions', 'TimeseriesFieldConfig'],
  stat: ['StatOptions', 'never'],
  bargauge: ['BarGaugeOptions', 'never'],
  table: ['TableOptions', 'TableFieldConfig'],
};

const header = [
  "import type { Dashboard, Panel, RowPanel, FieldConfigSource, FieldConfig, VariableModel } from '@grafana/schema';",
  mode === 'full'
    ? [
        `import type { Options as TimeseriesOptions, FieldConfig as TimeseriesFieldConfig } from '${cfg('timeseries', 'TimeSeriesPanelCfg')}';`,
        `import type { Options as StatOptions } from '${cfg('stat', 'StatPanelCfg')}';`,
        `import type { Options as BarGaugeOptions } from '${cfg('bargauge', 'BarGaugePanelCfg')}';`,
        `import type { Options as TableOptions, FieldConfig as TableFieldConfig } from '${cfg('table', 'TablePanelCfg')}';`,
      ].join('\n')
    : `import type { PrometheusDataQuery } from '${promQuery}';`,
  `
// JSON spelling of a schema type: string enums become the union of their values.
type Jsonify<T> = T extends string
  ? string extends T ? string : \`\${T}\`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Jsonify<U>>
      : T extends object
        ? { [K in keyof T]: Jsonify<T[K]> }
        : T;

// A panel whose options and custom field config are those of its plugin.
type PluginPanel<P extends string, O, F> = Jsonify<
  Omit<Panel, 'type' | 'options' | 'fieldConfig'> & {
    type: P;
    options: O;
    fieldConfig: Omit<FieldConfigSource, 'defaults'> & {
      defaults: Omit<FieldConfig, 'custom'> & { custom?: F };
    };
  }
>;
type AnyPanel = Jsonify<Panel>;
type Row = Jsonify<RowPanel>;
type Variable = Jsonify<VariableModel>;
${mode === 'base' ? 'type Target = Jsonify<PrometheusDataQuery>;' : ''}
`,
];

function panelType(panel) {
  if (mode === 'base') return 'AnyPanel';
  const p = plugins[panel.type];
  if (!p) throw new Error(`panel ${panel.id} "${panel.title}": no schema type known for plugin ${panel.type}`);
  return `PluginPanel<'${panel.type}', ${p[0]}, ${p[1]}>`;
}

// Emits `value` as a TypeScript literal; panels and targets get their own `satisfies`.
function emit(value, indent, kind) {
  const pad = '  '.repeat(indent + 1);
  const end = '  '.repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const childKind = kind === 'panels' ? 'panel' : kind === 'targets' ? 'target' : null;
    return `[\n${value.map((v) => pad + emit(v, indent + 1, childKind)).join(',\n')}\n${end}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    const field = ([k, v]) => {
      const childKind = ['panels', 'targets'].includes(k) ? k : null;
      return `${pad}${JSON.stringify(k)}: ${emit(v, indent + 1, childKind)}`;
    };
    const body = entries.length === 0 ? '{}' : `{\n${entries.map(field).join(',\n')}\n${end}}`;
    if (kind === 'panel') {
      const type = value.type === 'row' ? 'Row' : panelType(value);
      return `(${body} satisfies ${type})`;
    }
    if (kind === 'target' && mode === 'base') return `(${body} satisfies Target)`;
    return body;
  }
  return JSON.stringify(value);
}

// Negative controls: copies of real panels with one mistake each.
function negatives() {
  const out = [];
  const clone = (v) => JSON.parse(JSON.stringify(v));
  const find = (type) => {
    const p = dashboard.panels.find((x) => x.type === type);
    if (!p) throw new Error(`negative controls need a ${type} panel in the dashboard`);
    return clone(p);
  };
  // A copy of `panel` with fieldConfig.defaults changed.
  const withDefaults = (panel, change) => {
    const p = clone(panel);
    Object.assign(p.fieldConfig.defaults, change);
    return p;
  };
  const bad = (why, type, value) =>
    out.push(
      `// @ts-expect-error ${why}\n` +
        `const _bad${out.length} = ${JSON.stringify(value)} satisfies ${type};`,
    );
  const ts = find('timeseries');
  const tsType = panelType(ts);
  bad('unknown panel key', tsType, { ...ts, titel: ts.title });
  bad('color mode is not a FieldColorModeId', tsType, withDefaults(ts, { color: { mode: 'rainbow' } }));
  bad('threshold mode is not a ThresholdsMode', tsType,
      withDefaults(ts, { thresholds: { mode: 'relative-ish', steps: [] } }));
  bad('variable type is not a VariableType', 'Variable',
      { ...dashboard.templating.list[1], type: 'dropdown' });
  bad('unknown dashboard key', 'Jsonify<Dashboard>', { schemaVersion: 38, titel: 'x' });
  if (mode === 'full') {
    bad('tooltip mode is not a TooltipDisplayMode', tsType,
        { ...ts, options: { ...ts.options, tooltip: { mode: 'sideways', sort: 'none' } } });
    bad('drawStyle is not a GraphDrawStyle', tsType,
        withDefaults(ts, { custom: { ...ts.fieldConfig.defaults.custom, drawStyle: 'squiggle' } }));
    const stat = find('stat');
    bad('stat options lack textMode', panelType(stat),
        { ...stat, options: { ...stat.options, textMode: undefined } });
    bad('stat panels have no custom field config', panelType(stat),
        withDefaults(stat, { custom: { lineWidth: 1 } }));
  } else {
    const target = ts.targets[0];
    bad('unknown Prometheus query key', 'Target', { ...target, exprr: target.expr });
    bad('format is not a PromQueryFormat', 'Target', { ...target, format: 'series' });
  }
  return out.join('\n\n');
}

const source = `${header.join('\n')}
export const dashboard = ${emit(dashboard, 0, null)} satisfies Jsonify<Dashboard>;

${negatives()}
`;

// Where a tsc error points into the generated source: the line and the panel around it.
function locate(lines, lineNo) {
  const text = (lines[lineNo - 1] ?? '').trim();
  for (let i = lineNo - 1; i >= 0; i--) {
    const m = /^\s*"title": (".*"),?$/.exec(lines[i]);
    if (m) return `${text}   (in the object titled ${m[1]})`;
  }
  return text;
}

const dir = mkdtempSync(join(schemaDir, 'check-'));
try {
  writeFileSync(join(dir, 'dashboard.ts'), source);
  const args = [
    '--noEmit', '--strict', '--exactOptionalPropertyTypes',
    '--target', 'es2022', '--module', 'esnext', '--moduleResolution', 'bundler',
    '--skipLibCheck', '--pretty', 'false', 'dashboard.ts',
  ];
  const r = spawnSync(process.execPath, [tsc, ...args], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) {
    const lines = source.split('\n');
    for (const line of (r.stdout + r.stderr).split('\n').filter(Boolean)) {
      const m = /^dashboard\.ts\((\d+),\d+\): (.*)$/.exec(line);
      console.error(m ? `${dashboardPath}: ${m[2]}\n    at: ${locate(lines, Number(m[1]))}` : line);
    }
    console.error(`dashboard-schema-check: ${dashboardPath} does not type-check against ${schemaDir} (${mode})`);
    process.exitCode = 1;
  } else {
    console.log(`dashboard-schema-check: ${dashboardPath} ok against ${schemaDir} (${mode})`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
