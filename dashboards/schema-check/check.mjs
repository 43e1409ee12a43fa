// Structural check of Grafana dashboard JSON against @grafana/schema's TypeScript types.
//
//   node check.mjs                  # every ../generated/*.json
//   node check.mjs a.json b.json    # just these
//
// Each dashboard is written to build/<name>.ts as typed constants (one per panel, so a mistake is
// reported against the panel that has it) and `tsc --noEmit` type-checks them all. Exit status is tsc's.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const generated = resolve(here, '..', 'generated');
const build = join(here, 'build');
const knownPanels = new Set(['timeseries', 'stat', 'bargauge', 'heatmap']);

const args = process.argv.slice(2);
const files = args.length > 0
  ? args.map((f) => resolve(f))
  : readdirSync(generated).filter((f) => f.endsWith('.json')).sort().map((f) => join(generated, f));
if (files.length === 0) {
  console.error(`no dashboard JSON files found in ${generated}`);
  process.exit(2);
}

function literal(value) {
  return JSON.stringify(value, null, 2);
}

function toTypeScript(dashboard, source) {
  const lines = [
    `// Written by dashboards/schema-check/check.mjs from ${basename(source)}; do not edit.`,
    "import type { CheckAssignable, PanelOf, Row, TypedDashboard } from '../types';",
    '',
  ];
  const names = [];
  for (const [index, panel] of (dashboard.panels ?? []).entries()) {
    const name = `panel${index}_${String(panel.title ?? 'untitled').replace(/\W+/g, '_')}`;
    if (panel.type === 'row') {
      lines.push(`const ${name}: Row = ${literal(panel)};`, '');
    } else if (knownPanels.has(panel.type)) {
      lines.push(`const ${name}: PanelOf<'${panel.type}'> = ${literal(panel)};`, '');
    } else {
      console.error(`${source}: panel '${panel.title}' has type '${panel.type}'; ` +
        `check.mjs knows ${[...knownPanels].join(', ')} (add its panelcfg types to types.ts)`);
      process.exit(2);
    }
    names.push(name);
  }
  const { panels: _panels, ...rest } = dashboard;
  const body = literal(rest).replace(/\n}$/, `,\n  "panels": [${names.join(', ')}]\n}`);
  lines.push(`export const dashboard: TypedDashboard = ${body};`, '');
  lines.push('export type Checked = CheckAssignable<typeof dashboard>;', '');
  return lines.join('\n');
}

rmSync(build, { recursive: true, force: true });
mkdirSync(build);
for (const file of files) {
  const dashboard = JSON.parse(readFileSync(file, 'utf8'));
  const name = basename(file, '.json').replace(/\W+/g, '_');
  writeFileSync(join(build, `${name}.ts`), toTypeScript(dashboard, file));
}

const tsc = join(here, 'node_modules', 'typescript', 'bin', 'tsc');
const result = spawnSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.json'), '--noEmit', '--pretty', 'false'],
  { stdio: 'inherit', cwd: here });
if (result.status === 0) {
  console.log(`ok: ${files.length} dashboard(s) match @grafana/schema`);
}
process.exit(result.status ?? 1);
