/**
 * The data behind a chart: one metric of one run cut by the server to first/min/max/last per
 * pixel column (M4, GET …/metrics/downsample), decoded, smoothed, and several runs joined on
 * one x axis for uPlot. Why here: the browser never holds more than ~4 points per pixel,
 * whatever the run logged, so a chart of a million points draws as fast as one of a thousand.
 */

export type XMode = 'step' | 'time';
export type Range = { min: number; max: number } | null;
export type Series = { run: string; x: number[]; y: (number | null)[]; count: number };

/** Wire numbers ("NaN", "Infinity" as strings) as numbers; non-finite values are gaps. */
export function decodeValue(value: number | string): number | null {
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

/** Fetch one run's metric cut to `buckets` columns over `range` (null: everything). */
export async function fetchSeries(run: string, name: string, buckets: number, x: XMode,
                                  range: Range, signal?: AbortSignal): Promise<Series> {
  const q = new URLSearchParams({ name, buckets: String(Math.max(1, Math.min(10000, Math.round(buckets)))), x });
  if (range) { q.set('min', String(range.min)); q.set('max', String(range.max)); }
  const url = `/api/v1/runs/${encodeURIComponent(run)}/metrics/downsample?${q}`;
  const answer = await fetch(url, { credentials: 'same-origin', signal });
  if (!answer.ok) throw new Error(await errorLine(answer));
  const doc = await answer.json();
  return sorted({ run, x: doc.points.x, y: doc.points.y.map(decodeValue), count: doc.count });
}

export async function errorLine(answer: Response): Promise<string> {
  try {
    const doc = await answer.json();
    return String(doc.detail ?? answer.statusText);
  } catch {
    return `${answer.status} ${answer.statusText}`;
  }
}

/** The points in x order (uPlot needs ascending x; time-x of merged streams may not be). */
export function sorted(s: Series): Series {
  let ok = true;
  for (let i = 1; i < s.x.length && ok; i++) ok = s.x[i - 1] <= s.x[i];
  if (ok) return s;
  const order = s.x.map((_, i) => i).sort((a, b) => s.x[a] - s.x[b]);
  return { ...s, x: order.map((i) => s.x[i]), y: order.map((i) => s.y[i]) };
}

/** Exponential moving average (TensorBoard's, debiased); weight 0 leaves the values. */
export function smooth(y: (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) return y;
  let last = 0, n = 0;
  return y.map((v) => {
    if (v === null) return null;
    last = last * weight + (1 - weight) * v;
    n += 1;
    return last / (1 - Math.pow(weight, n));
  });
}

/** Values a log axis can show (≤ 0 are gaps). */
export function positive(y: (number | null)[]): (number | null)[] {
  return y.map((v) => (v !== null && v > 0 ? v : null));
}

/** Several series on one sorted x axis (uPlot's aligned data): gaps where a run has no x. */
export function join(series: (number | null)[][][]): (number | null)[][] {
  if (series.length === 1) return [series[0][0], series[0][1]];
  const xs = Array.from(new Set(series.flatMap((s) => s[0] as number[]))).sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const out: (number | null)[][] = [xs];
  for (const [x, y] of series) {
    const col: (number | null)[] = new Array(xs.length).fill(null);
    for (let i = 0; i < x.length; i++) col[at.get(x[i] as number) as number] = y[i];
    out.push(col);
  }
  return out;
}

/** Append live points past the last x a series has (the stream may repeat a few). */
export function extend(s: Series, xs: number[], ys: (number | null)[], range: Range): boolean {
  let last = s.x.length ? s.x[s.x.length - 1] : -Infinity;
  let added = false;
  for (let i = 0; i < xs.length; i++) {
    if (xs[i] <= last) continue;
    if (range && (xs[i] < range.min || xs[i] > range.max)) continue;
    s.x.push(xs[i]); s.y.push(ys[i]); s.count += 1; added = true; last = xs[i];
  }
  return added;
}
