/**
 * SVG plots of the timing tables, rendered headless with vega-lite: for
 * each scaled workload, median dump and restore time against its size,
 * one line per backend and way of invoking it.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { Row } from './report.js';
import { MODE_TEXT } from './report.js';
import { workloads } from './workloads.js';

export interface Plot {
  file: string;
  title: string;
  svg: string;
}

export function plotSpec(workload: string, unit: string, rows: Row[]): vl.TopLevelSpec | undefined {
  const values: Record<string, unknown>[] = [];
  for (const r of rows) {
    if (r.workload !== workload || r.size === null) continue;
    const who = `${r.backend} (${MODE_TEXT[r.mode].replace(/`/g, '')})`;
    if (r.dumpMs) values.push({ size: r.size, op: 'dump', ms: r.dumpMs.median, lo: r.dumpMs.min, hi: r.dumpMs.max, who });
    if (r.frozenMs) values.push({ size: r.size, op: 'frozen (downtime)', ms: r.frozenMs.median, lo: r.frozenMs.min, hi: r.frozenMs.max, who });
    if (r.restoreMs) values.push({ size: r.size, op: 'restore', ms: r.restoreMs.median, lo: r.restoreMs.min, hi: r.restoreMs.max, who });
  }
  if (new Set(values.map((v) => v.size)).size < 1 || !values.length) return undefined;
  const x = { field: 'size', type: 'quantitative' as const, title: unit, scale: { type: 'log' as const } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${workload}: time against ${unit} (median, bars min–max)`,
    data: { values },
    facet: { column: { field: 'op', type: 'nominal', title: null, sort: ['dump', 'frozen (downtime)', 'restore'] } },
    spec: {
      width: 260,
      height: 220,
      layer: [
        { mark: { type: 'line', point: true }, encoding: { x, y: { field: 'ms', type: 'quantitative', title: 'ms', scale: { type: 'log' } }, color: { field: 'who', type: 'nominal', title: 'backend' } } },
        { mark: { type: 'rule' }, encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color: { field: 'who', type: 'nominal' } } },
      ],
    },
    resolve: { scale: { y: 'independent' } },
    config: { background: 'white' },
  } as vl.TopLevelSpec;
}

export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

/** One plot per scaled workload that has sizes (mem: time vs MiB, tree: vs processes, …). */
export async function makePlots(rows: Row[]): Promise<Plot[]> {
  const out: Plot[] = [];
  for (const w of workloads) {
    if (w.sizes.length < 2) continue;
    const spec = plotSpec(w.name, w.unit, rows);
    if (!spec) continue;
    out.push({ file: `${w.name}-time.svg`, title: `${w.name}: time against ${w.unit}`, svg: await renderSvg(spec) });
  }
  return out;
}
