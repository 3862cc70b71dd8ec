// The runs of the list: the first page at once, further pages by cursor, the count beside,
// and the top of the list kept live through /api/v1/watch/runs (new runs appear, status
// changes show, deleted runs go) without a reload.
//
// Timing marks for the benchmark: `list-ask` when a listing is asked for, `list-rows` once its
// rows are drawn, and the measures `list-first-rows` (the page's first listing, from the ask)
// and `list-filter` (from the user's change of a filter, `list-change`, to its rows drawn).
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
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
      performance.mark("list-got");
      setRows(page.runs); setCursor(page.next_cursor); setFresh(new Set());
      setLoading(false); setGeneration((g) => g + 1);
    }).catch((e) => failed(e, abort, setError, setLoading));
    countRuns(filter, abort.signal).then(setTotal).catch(() => undefined);
    return () => abort.abort();
  }, [key]);

  useLayoutEffect(() => { // once the rows of a listing are in the page: at its next frame
    if (generation === 0) return;
    performance.mark("list-dom");
    requestAnimationFrame(() => {
      performance.mark("list-rows");
      if (first.current) performance.measure("list-first-rows", "list-ask", "list-rows");
      else if (performance.getEntriesByName("list-change").length) {
        performance.measure("list-filter", "list-change", "list-rows");
      }
      first.current = false;
    });
  }, [generation]);

  useEffect(() => {
    if (order !== "newest") return undefined;
    // A stream's events come one by one (200 at its start): they are merged once per frame,
    // in one update, not one render each (that was 0.6 s of rendering at the list's start).
    let pending: Run[] = [];
    let frame = 0;
    const flush = () => {
      frame = 0;
      const merged = merge(shown.current, pending, more.current);
      pending = [];
      if (merged.rows === shown.current) return;
      shown.current = merged.rows;
      setRows(merged.rows);
      if (merged.added.length) {
        setFresh((f) => new Set([...f, ...merged.added]));
        setTotal((t) => (t === null ? t : t + merged.added.length));
      }
    };
    const onRun = (run: Run) => {
      pending.push(run);
      if (!frame) frame = requestAnimationFrame(flush);
    };
    const onRemoved = ({ id }: { id: string }) => {
      const run = shown.current.find((r) => r.id === id);
      if (run) recheck(run, filter, drop);
    };
    const stop = watchRuns({ ...filter }, { run: onRun, removed: onRemoved }, setLive, WATCHED);
    return () => { stop(); cancelAnimationFrame(frame); setLive(false); };
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

/** ``rows`` with ``runs`` (news of the stream) merged in: changed runs replaced, new ones put
 * in id order (newest first) unless below the pages loaded so far; the same array if nothing
 * changed. */
export function merge(rows: Run[], runs: Run[], more: boolean): { rows: Run[]; added: string[] } {
  let out = rows;
  const added: string[] = [];
  for (const run of runs) {
    const at = out.findIndex((r) => r.id === run.id);
    if (at >= 0) {
      if (!same(out[at], run)) out = out.map((r, i) => (i === at ? run : r));
      continue;
    }
    const last = out[out.length - 1];
    if (more && last && run.id < last.id) continue; // below the loaded pages
    const below = out.findIndex((r) => r.id < run.id);
    out = below < 0 ? [...out, run] : [...out.slice(0, below), run, ...out.slice(below)];
    added.push(run.id);
  }
  return { rows: out, added };
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
