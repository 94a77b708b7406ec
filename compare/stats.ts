/** Order statistics for the report: small samples, so nothing fancier than median, min, max. */

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Summary of the finite values in `xs`, or undefined when there are none. */
export function summarize(xs: (number | undefined | null)[]): Summary | undefined {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (!v.length) return undefined;
  return { n: v.length, median: median(v), min: Math.min(...v), max: Math.max(...v) };
}

/** a / b of two medians, or undefined when either is missing or b is 0. */
export function ratio(a?: Summary, b?: Summary): number | undefined {
  if (!a || !b || b.median === 0) return undefined;
  return a.median / b.median;
}

/** Formats a number with about three significant digits. */
export function fmt(x: number | undefined, unit = ''): string {
  if (x === undefined || !Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  const s = a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toFixed(3);
  return unit ? `${s} ${unit}` : s;
}

/** "median (min–max)" of a summary, or "–". */
export function fmtSummary(s: Summary | undefined, scale = 1): string {
  if (!s) return '–';
  if (s.n === 1 || fmt(s.min * scale) === fmt(s.max * scale)) return fmt(s.median * scale);
  return `${fmt(s.median * scale)} (${fmt(s.min * scale)}–${fmt(s.max * scale)})`;
}

/** Least-squares line y = slope·x + intercept through (x, y) points; undefined with fewer than two distinct x. */
export function leastSquares(points: [number, number][]): { slope: number; intercept: number } | undefined {
  if (new Set(points.map(([x]) => x)).size < 2) return undefined;
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx };
}
