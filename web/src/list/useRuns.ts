// The runs of the list: the first page at once, further pages by cursor, the count beside,
// and the top of the list kept live through /api/v1/watch/runs (new runs appear, status
// changes show, deleted runs go) without a reload.
//
// Timing marks for the benchmark: `list-ask` when a listing is asked for, `list-rows` once its
// rows are drawn, and the measures `list-first-rows` (the page's first listing) and
// `list-filter` (from the filter's change to its rows drawn).
import { useEffect, useRef, useState } from "preact/hooks";
import { countRuns, listRuns, watchRuns, type Run, type RunFilter } from "../api";

export const PAGE = 100;
const WATCHED = 200; // the newest runs the live stream follows

export interface Runs {
  rows: Run[]; total: number | null; more: boolean; loading: boolean; error: string | null;
  fresh: Set<string>; live: boolean; generation: number; loadMore: () => void;
}

const QUIET = new Set(["heartbeat", "resources"]);
function same(a: Run, b: Run): boolean {
  const strip = (r: Run) => JSON.stringify(r, (k, v) => (QUIET.has(k) ? undefined : v));
  return strip(a) === strip(b);
}

export function useRuns(filter: RunFilter, key: string, order: "newest" | "oldest"): Runs {
  const [rows, setRows] = useState<Run[]>([]);
  const [total, setTotal] = useState<number | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const [live, setLive] = useState(false);
  const [generation, setGeneration] = useState(0);
  const first = useRef(true);
  const paging = useRef<AbortController | null>(null);
  const more = useRef(false);
  more.current = cursor !== null;
  const shown = useRef<Run[]>([]);
  shown.current = rows;

  useEffect(() => {
    const abort = new AbortController();
    paging.current?.abort();
    paging.current = abort;
    setLoading(true); setError(null); setTotal(null);
    performance.mark("list-ask");
    listRuns(filter, { limit: PAGE, order }, abort.signal).then((page) => {
      if (abort.signal.aborted) return;
      setRows(page.runs); setCursor(page.next_cursor); setFresh(new Set());
      setLoading(false); setGeneration((g) => g + 1);
    }).catch((e) => failed(e, abort, setError, setLoading));
    countRuns(filter, abort.signal).then(setTotal).catch(() => undefined);
    return () => abort.abort();
  }, [key]);

  useEffect(() => { // after the rows of a listing are drawn
    if (generation === 0) return;
    requestAnimationFrame(() => {
      performance.mark("list-rows");
      performance.measure(first.current ? "list-first-rows" : "list-filter", "list-ask", "list-rows");
      first.current = false;
    });
  }, [generation]);

  useEffect(() => {
    if (order !== "newest") return undefined;
    const onRun = (run: Run) => {
      setRows((now) => {
        const at = now.findIndex((r) => r.id === run.id);
        if (at >= 0) return same(now[at], run) ? now : now.map((r, i) => (i === at ? run : r));
        const last = now[now.length - 1];
        if (more.current && last && run.id < last.id) return now; // below the loaded pages
        setFresh((f) => new Set(f).add(run.id));
        setTotal((t) => (t === null ? t : t + 1));
        const below = now.findIndex((r) => r.id < run.id);
        return below < 0 ? [...now, run] : [...now.slice(0, below), run, ...now.slice(below)];
      });
    };
    const onRemoved = ({ id }: { id: string }) => {
      const run = shown.current.find((r) => r.id === id);
      if (run) recheck(run, filter, drop);
    };
    const stop = watchRuns({ ...filter }, { run: onRun, removed: onRemoved }, setLive, WATCHED);
    return () => { stop(); setLive(false); };
  }, [key, order]);

  const drop = (id: string) => {
    setRows((now) => {
      if (!now.some((r) => r.id === id)) return now;
      setTotal((t) => (t === null ? t : t - 1));
      return now.filter((r) => r.id !== id);
    });
  };

  useEffect(() => { // changes made in this page (rename, tag, delete) show at once
    const changed = (e: Event) => {
      const run = (e as CustomEvent<Run>).detail;
      setRows((now) => now.map((r) => (r.id === run.id ? run : r)));
    };
    const removed = (e: Event) => drop((e as CustomEvent<{ id: string }>).detail.id);
    window.addEventListener("runyard:run", changed);
    window.addEventListener("runyard:removed", removed);
    return () => {
      window.removeEventListener("runyard:run", changed);
      window.removeEventListener("runyard:removed", removed);
    };
  }, []);

  const loadMore = () => {
    if (!cursor || loading) return;
    const abort = paging.current ?? new AbortController();
    setLoading(true);
    listRuns(filter, { limit: PAGE, order, cursor }, abort.signal).then((page) => {
      if (abort.signal.aborted) return;
      setRows((now) => {
        const seen = new Set(now.map((r) => r.id));
        return [...now, ...page.runs.filter((r) => !seen.has(r.id))];
      });
      setCursor(page.next_cursor); setLoading(false);
    }).catch((e) => failed(e, abort, setError, setLoading));
  };

  return { rows, total, more: cursor !== null, loading, error, fresh, live, generation, loadMore };
}

/** A run left the watched top of the list: deleted, no longer matching, or pushed down by
 * newer runs. Asked by name within the filter (never a 404 probe), it goes unless still there. */
function recheck(run: Run, filter: RunFilter, drop: (id: string) => void): void {
  listRuns({ ...filter, name: run.name }, { limit: 1000 })
    .then((page) => { if (!page.runs.some((r) => r.id === run.id)) drop(run.id); })
    .catch(() => undefined);
}

function failed(e: unknown, abort: AbortController, setError: (s: string) => void,
  setLoading: (b: boolean) => void): void {
  if (abort.signal.aborted) return;
  setError(e instanceof Error ? e.message : String(e));
  setLoading(false);
}
