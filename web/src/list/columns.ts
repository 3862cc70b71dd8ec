// The list's chosen columns: a run parameter (`param:lr`) or the last value of a metric
// (`metric:loss`, from each shown run's metric summary, fetched a few at a time and kept).
import { useEffect, useRef, useState } from "preact/hooks";
import { metricSummary, type MetricSummary, type Run } from "../api";

const KEY = "runyard.columns";
const AT_ONCE = 6;

export type Column = `param:${string}` | `metric:${string}`;

export function loadColumns(): Column[] {
  try {
    const kept = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(kept) ? kept.filter((c) => /^(param|metric):./.test(c)) : [];
  } catch { return []; }
}

export function saveColumns(cols: Column[]): void { localStorage.setItem(KEY, JSON.stringify(cols)); }

export const columnLabel = (c: Column) => c.slice(c.indexOf(":") + 1);

/** The parameter names of the runs shown, for the column chooser. */
export function parameterNames(rows: Run[]): string[] {
  const names = new Set<string>();
  for (const r of rows.slice(0, 500)) Object.keys(r.parameters || {}).forEach((k) => names.add(k));
  return [...names].sort();
}

export type Summaries = Map<string, Map<string, MetricSummary>>;

/** Metric summaries of ``ids`` while ``wanted``: fetched AT_ONCE at a time, each once. */
export function useSummaries(ids: string[], wanted: boolean): Summaries {
  const cache = useRef<Summaries>(new Map());
  const asked = useRef<Set<string>>(new Set());
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!wanted) return undefined;
    const todo = ids.filter((id) => !asked.current.has(id));
    let stopped = false;
    const next = async (): Promise<void> => {
      const id = todo.shift();
      if (id === undefined || stopped) return;
      asked.current.add(id);
      try {
        const found = await metricSummary(id);
        cache.current.set(id, new Map(found.map((m) => [m.name, m])));
        setTick((t) => t + 1);
      } catch { asked.current.delete(id); }
      return next();
    };
    for (let i = 0; i < AT_ONCE; i++) void next();
    return () => { stopped = true; };
  }, [ids.join(","), wanted]);
  return cache.current;
}
