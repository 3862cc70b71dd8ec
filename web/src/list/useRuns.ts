// The runs of the list: the first page at once, further pages by cursor (the default order,
// by creation) or by offset (any other order the server sorts by), the count beside, and the
// list kept live through /api/v1/watch/runs without a reload. The stream follows the newest
// runs and every active one however old, so a change shows on any row held, wherever it is in
// the list; a new run is put where it belongs in creation order (newest first: at the top),
// and with another order the stream only updates the rows shown.
//
// Timing marks for the benchmark: `list-ask` when a listing is asked for, `list-rows` once its
// rows are drawn, and the measures `list-first-rows` (the page's first listing, from the ask)
// and `list-filter` (from the user's change of a filter, `list-change`, to its rows drawn).
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { countRuns, listRuns, watchRuns, type Run, type RunFilter, type RunPage } from "../api";

export const PAGE = 100;
const WATCHED = 200; // the newest runs the live stream follows (the server adds the active ones)

export interface Runs {
  rows: Run[]; total: number | null; more: boolean; loading: boolean; error: string | null;
  fresh: Set<string>; live: boolean; generation: number; loadMore: () => void;
}

/** Where the next page starts: a cursor (creation order) or an offset (any other order). */
type Next = { cursor: string } | { offset: number };
/** How the stream's news is merged: new runs placed in creation order, or only updates. */
export type Mode = "newest" | "oldest" | "update";

const QUIET = new Set(["heartbeat", "resources"]);
function same(a: Run, b: Run): boolean {
  const strip = (r: Run) => JSON.stringify(r, (k, v) => (QUIET.has(k) ? undefined : v));
  return strip(a) === strip(b);
}

function nextOf(page: RunPage, sort: string): Next | null {
  if (sort === "created") return page.next_cursor ? { cursor: page.next_cursor } : null;
  return typeof page.next_offset === "number" ? { offset: page.next_offset } : null;
}

export function useRuns(filter: RunFilter, key: string, sort: string, order: "newest" | "oldest",
  onNews?: (runs: Run[]) => void): Runs {
  const [rows, setRows] = useState<Run[]>([]);
  const [total, setTotal] = useState<number | null>(null);
  const [next, setNext] = useState<Next | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const [live, setLive] = useState(false);
  const [generation, setGeneration] = useState(0);
  const first = useRef(true);
  const paging = useRef<AbortController | null>(null);
  const more = useRef(false);
  more.current = next !== null;
  const shown = useRef<Run[]>([]);
  shown.current = rows;
  const news = useRef(onNews);
  news.current = onNews;

  useEffect(() => {
    const abort = new AbortController();
    paging.current?.abort();
    paging.current = abort;
    setLoading(true); setError(null); setTotal(null);
    performance.mark("list-ask");
    let stop = () => undefined as void;
    // the count shows with this listing's rows, never beside the rows of the one before
    let listed = false;
    let counted: number | null = null;
    listRuns(filter, { limit: PAGE, order, sort }, abort.signal).then((page) => {
      if (abort.signal.aborted) return;
      performance.mark("list-got");
      const after = nextOf(page, sort);
      shown.current = page.runs; more.current = after !== null;
      setRows(page.runs); setNext(after); setFresh(new Set());
      setLoading(false); setGeneration((g) => g + 1);
      listed = true;
      if (counted !== null) setTotal(counted);
      stop = follow(); // live from here: the stream's first news is every run it follows
    }).catch((e) => failed(e, abort, setError, setLoading));
    countRuns(filter, abort.signal).then((n) => {
      counted = n;
      if (listed && !abort.signal.aborted) setTotal(n);
    }).catch(() => undefined);
    return () => { abort.abort(); stop(); setLive(false); };
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

  /** Follows the list; returns what stops it. A stream's events come one by one (hundreds at
   * its start): they are merged once per frame, in one update, not one render each (that was
   * 0.6 s of rendering at the list's start). */
  const follow = () => {
    const mode: Mode = sort === "created" ? order : "update";
    let pending: Run[] = [];
    let frame = 0;
    const flush = () => {
      frame = 0;
      const came = pending;
      pending = [];
      news.current?.(came);
      const merged = merge(shown.current, came, more.current, mode);
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
    // the server says `removed` only for a run deleted or no longer matching the filters
    const onRemoved = ({ id }: { id: string }) => drop(id);
    const stop = watchRuns({ ...filter }, { run: onRun, removed: onRemoved }, setLive, WATCHED);
    return () => { stop(); cancelAnimationFrame(frame); };
  };

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
    if (!next || loading) return;
    const abort = paging.current ?? new AbortController();
    setLoading(true);
    listRuns(filter, { limit: PAGE, order, sort, ...next }, abort.signal).then((page) => {
      if (abort.signal.aborted) return;
      setRows((now) => {
        const seen = new Set(now.map((r) => r.id));
        return [...now, ...page.runs.filter((r) => !seen.has(r.id))];
      });
      setNext(nextOf(page, sort)); setLoading(false);
    }).catch((e) => failed(e, abort, setError, setLoading));
  };

  return { rows, total, more: next !== null, loading, error, fresh, live, generation, loadMore };
}

/** ``rows`` with ``runs`` (news of the stream) merged in: changed runs replaced wherever they
 * are; with mode `newest`/`oldest`, new ones put in id (creation) order unless beyond the pages
 * loaded so far; with `update`, new ones left out. The same array if nothing changed. */
export function merge(rows: Run[], runs: Run[], more: boolean,
  mode: Mode = "newest"): { rows: Run[]; added: string[] } {
  let out = rows;
  let index = new Map(rows.map((r, i) => [r.id, i]));
  const added: string[] = [];
  const before = (a: Run, b: Run) => (mode === "newest" ? a.id > b.id : a.id < b.id);
  for (const run of runs) {
    const at = index.get(run.id);
    if (at !== undefined) {
      if (same(out[at], run)) continue;
      if (out === rows) out = rows.slice();
      out[at] = run;
      continue;
    }
    if (mode === "update") continue;
    const place = out.findIndex((r) => before(run, r));
    if (place < 0 && more) continue; // beyond the loaded pages
    out = place < 0 ? [...out, run] : [...out.slice(0, place), run, ...out.slice(place)];
    index = new Map(out.map((r, i) => [r.id, i]));
    added.push(run.id);
  }
  return { rows: out, added };
}

function failed(e: unknown, abort: AbortController, setError: (s: string) => void,
  setLoading: (b: boolean) => void): void {
  if (abort.signal.aborted) return;
  setError(e instanceof Error ? e.message : String(e));
  setLoading(false);
}
