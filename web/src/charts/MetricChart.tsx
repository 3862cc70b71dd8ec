/**
 * A line chart of one metric for any number of runs (the run page draws one run; the compare
 * view overlays several): uPlot over the server's M4 cut at the chart's pixel width, so it is
 * as fast at a million points as at a thousand. Drag to zoom (the range is fetched again at
 * full detail), double-click or "reset" to zoom out; x by step or time; log scale; smoothing;
 * the legend shows the values under the cursor; series of running runs grow live.
 *
 * Timing marks for the benchmark: `chart-ask:<name>` when the data is asked for and
 * `chart-paint:<name>` once uPlot has drawn it; the root element's `data-state` is `ready`
 * (with `data-points`, the points drawn) when a draw is done.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { follow } from './live';
import { Range, Series, XMode, decodeValue, extend, fetchSeries, join, positive, smooth } from './series';
import { installChartStyle } from './style';

export type MetricChartProps = {
  runs: string[];
  name: string;
  labels?: Record<string, string>;
  x?: XMode;
  log?: boolean;
  smoothing?: number;
  height?: number;
  controls?: boolean;
  live?: boolean;
};

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777'];

export function MetricChart(props: MetricChartProps) {
  const [x, setX] = useState<XMode>(props.x ?? 'step');
  const [log, setLog] = useState(props.log ?? false);
  const [smoothing, setSmoothing] = useState(props.smoothing ?? 0);
  const [range, setRange] = useState<Range>(null);
  const [series, setSeries] = useState<Series[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const width = useWidth(box);
  const key = props.runs.join(',');

  useEffect(() => { setRange(null); }, [key, props.name, x]);
  useEffect(() => {
    if (!width) return;
    const abort = new AbortController();
    performance.mark(`chart-ask:${props.name}`);
    setError(null);
    Promise.all(props.runs.map((r) => fetchSeries(r, props.name, width, x, range, abort.signal)))
      .then(setSeries)
      .catch((e) => { if (!abort.signal.aborted) setError(String(e.message ?? e)); });
    return () => abort.abort();
  }, [key, props.name, x, range, width]);
  useLive(props, series, x, range, () => setTick((t) => t + 1));
  useEffect(() => {  // a theme switch redraws with the new colours
    const watcher = new MutationObserver(() => setTick((t) => t + 1));
    watcher.observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme', 'class'] });
    return () => watcher.disconnect();
  }, []);
  useEffect(() => {
    if (!series || !box.current) return;
    draw(box.current, plot, series, { ...props, x, log, smoothing, width, setRange });
  }, [series, log, smoothing, tick, width]);
  useEffect(() => () => { plot.current?.destroy(); plot.current = null; }, []);

  const count = series ? series.reduce((n, s) => n + s.count, 0) : 0;
  return (
    <figure class="metric-chart" data-metric={props.name}>
      <figcaption>
        <strong>{props.name}</strong>
        {series && <span class="muted"> {count.toLocaleString()} points{range ? ' in range' : ''}</span>}
        {props.controls !== false && (
          <span class="chart-controls">
            <label>x <select value={x} onChange={(e) => setX((e.target as HTMLSelectElement).value as XMode)}
                           aria-label={`x axis of ${props.name}`}>
              <option value="step">step</option><option value="time">time</option></select></label>
            <label><input type="checkbox" checked={log} aria-label={`log scale of ${props.name}`}
                          onChange={(e) => setLog((e.target as HTMLInputElement).checked)} /> log</label>
            <label>smooth <input type="range" min="0" max="0.99" step="0.01" value={smoothing}
                                 aria-label={`smoothing of ${props.name}`}
                                 onInput={(e) => setSmoothing(Number((e.target as HTMLInputElement).value))} /></label>
            <button type="button" disabled={!range} onClick={() => setRange(null)}>reset zoom</button>
          </span>
        )}
      </figcaption>
      {error && <p class="error" role="alert">{error}</p>}
      <div ref={box} class="chart-box" onDblClick={() => setRange(null)} />
    </figure>
  );
}

/** The box's width in CSS pixels (the number of buckets asked for), kept up to date. */
function useWidth(box: { current: HTMLDivElement | null }): number {
  const [width, setWidth] = useState(0);
  useEffect(() => {
    if (!box.current) return;
    const measure = () => setWidth(Math.max(200, Math.floor(box.current?.clientWidth ?? 600)));
    measure();
    let timer = 0;
    const observer = new ResizeObserver(() => { clearTimeout(timer); timer = window.setTimeout(measure, 150); });
    observer.observe(box.current);
    return () => { observer.disconnect(); clearTimeout(timer); };
  }, []);
  return width;
}

/** New points of running runs, appended as they arrive (one redraw per animation frame). */
function useLive(props: MetricChartProps, series: Series[] | null, x: XMode, range: Range,
                 redraw: () => void): void {
  useEffect(() => {
    if (!series || props.live === false) return;
    let frame = 0;
    const stops = series.map((s) => follow(s.run, 'metrics', {
      metrics: (cols) => {
        const xs: number[] = [], ys: (number | null)[] = [];
        cols.names.forEach((n, i) => {
          const at = x === 'step' ? cols.steps[i] : cols.times[i];
          if (n === props.name && at !== null) { xs.push(at); ys.push(decodeValue(cols.values[i])); }
        });
        if (xs.length && extend(s, xs, ys, range) && !frame) {
          frame = requestAnimationFrame(() => { frame = 0; redraw(); });
        }
      },
    }));
    return () => { stops.forEach((stop) => stop()); cancelAnimationFrame(frame); };
  }, [series, props.name, x, range]);
}

type DrawOptions = MetricChartProps & {
  x: XMode; log: boolean; smoothing: number; width: number; setRange: (r: Range) => void;
};

/** Draw `series` into `el`: new data into the same plot when only the data changed. */
function draw(el: HTMLElement, plot: { current: uPlot | null }, series: Series[], o: DrawOptions): void {
  installChartStyle();
  const data = join(series.flatMap((s) => {
    let y = smooth(s.y, o.smoothing);
    if (o.log) y = positive(y);
    return [[s.x, y]];
  })) as uPlot.AlignedData;
  const ink = getComputedStyle(el).color;  // canvas knows no currentColor: the theme's text
  const shape = `${series.length}|${o.log}|${o.x}|${o.width}|${o.height ?? 240}|${ink}`;
  if (plot.current && (plot.current as any)._shape === shape) {
    // new data from the server is marked once painted; live points are not (no mark per frame)
    (plot.current as any)._fresh = (plot.current as any)._series !== series;
    (plot.current as any)._series = series;
    plot.current.setData(data);
    return;
  }
  plot.current?.destroy();
  const u = Object.assign(new uPlot(options(series, o, ink), data, el), { _shape: shape, _series: series });
  plot.current = u;
}

function options(series: Series[], o: DrawOptions, ink: string): uPlot.Options {
  const label = (run: string) => o.labels?.[run] ?? (series.length > 1 ? run : o.name);
  return {
    width: o.width, height: o.height ?? 240,
    scales: { x: { time: o.x === 'time' }, y: o.log ? { distr: 3 } : {} },
    series: [{ label: o.x }, ...series.map((s, i) => ({
      label: label(s.run), stroke: COLORS[i % COLORS.length], width: 1.25, spanGaps: false,
      points: { show: false },
    }))],
    axes: [{ stroke: ink, grid: { stroke: 'rgba(128,128,128,0.15)' }, ticks: { stroke: 'rgba(128,128,128,0.3)' } },
           { stroke: ink, grid: { stroke: 'rgba(128,128,128,0.15)' }, ticks: { stroke: 'rgba(128,128,128,0.3)' }, size: 60 }],
    cursor: { drag: { x: true, y: false, setScale: false } },
    legend: { live: true },
    hooks: {
      setSelect: [(u) => zoomTo(u, o.name, o.setRange)],
      draw: [(u) => painted(u, o.name)],
    },
  };
}

function zoomTo(u: uPlot, name: string, setRange: (r: Range) => void): void {
  const { left, width } = u.select;
  if (width < 2) return;
  const min = u.posToVal(left, 'x'), max = u.posToVal(left + width, 'x');
  u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
  performance.mark(`chart-zoom:${name}`);
  setRange({ min, max });
}

function painted(u: uPlot, name: string): void {
  if ((u as any)._fresh !== false) performance.mark(`chart-paint:${name}`);
  (u as any)._fresh = false;
  const root = u.root.closest('.metric-chart') as HTMLElement | null;
  if (!root) return;
  root.dataset.state = 'ready';
  root.dataset.points = String(u.data[0].length);
  root.dataset.xmin = String(u.scales.x.min);
  root.dataset.xmax = String(u.scales.x.max);
  let top = -Infinity;
  for (const ys of u.data.slice(1)) for (const y of ys) if (y != null && y > top) top = y;
  root.dataset.ymax = String(top);
}
