// The runs list (#/): every kind of run, filtered, sorted on the server (by a column's
// header) and paged, live, beside the folder tree. Runs chosen here open side by side in the
// comparison (#/compare?ids=…).
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Run } from "../api";
import { compareHref, go } from "../shell/route";
import { loadColumns, parameterNames, saveColumns, useSummaries, type Column } from "./columns";
import { FilterBar } from "./FilterBar";
import { useFolders } from "./folders";
import { filterKey, fromParams, toParams, toRunFilter, type ListFilter } from "./filters";
import { FolderTree } from "./FolderTree";
import { RunTable } from "./RunTable";
import { useRuns } from "./useRuns";

export function RunList(props: { params: URLSearchParams }) {
  const [filter, setFilter] = useState<ListFilter>(() => fromParams(props.params));
  const key = filterKey(filter);
  const runFilter = useMemo(() => toRunFilter(filter), [key]);
  const treeFilter = useMemo(() => ({ ...runFilter, folder: undefined }), [key]);
  const treeKey = filterKey({ ...filter, folder: "", sort: "created", order: "newest" });
  const notice = useRef<(runs: Run[]) => void>(() => undefined);
  const runs = useRuns(runFilter, key, filter.sort, filter.order, (news) => notice.current(news));
  const folders = useFolders(treeFilter, treeKey, runs.generation);
  notice.current = folders.notice;
  const [columns, setColumns] = useState<Column[]>(loadColumns);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [message, setMessage] = useState<{ text: string; bad: boolean } | null>(null);
  const ids = useMemo(() => runs.rows.map((r) => r.id), [runs.rows]);
  const summaries = useSummaries(ids, columns.some((c) => c.startsWith("metric:")));

  useEffect(() => { history.replaceState(null, "", `#/${toParams(filter) ? `?${toParams(filter)}` : ""}`); }, [key]);
  const set = (change: Partial<ListFilter>) => {
    performance.mark("list-change");
    setFilter((f) => ({ ...f, ...change }));
  };
  // the list's order: again on the same column turns it round; a new column starts
  // descending for creation (newest first, the default) and ascending for any other
  const sortBy = (k: string) => set(filter.sort === k
    ? { order: filter.order === "newest" ? "oldest" : "newest" }
    : { sort: k, order: k === "created" ? "newest" : "oldest" });
  const toggle = (id: string) => setSelected((s) => {
    const next = new Set(s);
    if (!next.delete(id)) next.add(id);
    return next;
  });
  const chooseColumns = (c: Column[]) => { setColumns(c); saveColumns(c); };
  const report = (text: string, bad = false) => setMessage({ text, bad });

  return (
    <main class="page list" data-state={runs.loading ? "loading" : "ready"} data-generation={runs.generation}>
      <FilterBar filter={filter} set={set} />
      <div class="toolbar">
        <span class="count" aria-live="polite">
          {runs.total === null ? `${runs.rows.length} runs` : `${runs.rows.length} of ${runs.total.toLocaleString()} runs`}
        </span>
        <span class={runs.live ? "live on" : "live"} title="New runs and status changes appear by themselves">
          {runs.live ? "● live" : "○ offline"}
        </span>
        <button type="button" class="primary" disabled={selected.size < 2}
          onClick={() => go(compareHref([...selected]))}>Compare {selected.size || ""}</button>
        {selected.size > 0 && <button type="button" onClick={() => setSelected(new Set())}>Clear selection</button>}
        <ColumnChooser rows={runs.rows} columns={columns} choose={chooseColumns} />
        <span role="status" class={message?.bad ? "message error" : "message"}>{message?.text}</span>
      </div>
      {runs.error && <p class="error" role="alert">{runs.error}</p>}
      <div class="split">
        <FolderTree folders={folders} chosen={filter.folder} choose={(folder) => set({ folder })} />
        <div class="table-wrap">
          <RunTable rows={runs.rows} fresh={runs.fresh} columns={columns} summaries={summaries}
            selected={selected} toggle={toggle} sort={filter.sort} descending={filter.order === "newest"}
            sortBy={sortBy} onEnd={runs.loadMore} report={report} />
          {!runs.loading && runs.rows.length === 0 && <p class="muted empty">No runs match.</p>}
          <Sentinel onSeen={runs.loadMore} />
          {runs.more && <button type="button" class="more" disabled={runs.loading} onClick={runs.loadMore}>
            {runs.loading ? "Loading…" : "Load more"}</button>}
        </div>
      </div>
    </main>
  );
}

function Sentinel(props: { onSeen: () => void }) {
  const el = useRef<HTMLDivElement>(null);
  const seen = useRef(props.onSeen);
  seen.current = props.onSeen;
  useEffect(() => {
    const watcher = new IntersectionObserver((e) => { if (e[0]?.isIntersecting) seen.current(); },
      { rootMargin: "400px" });
    if (el.current) watcher.observe(el.current);
    return () => watcher.disconnect();
  }, []);
  return <div ref={el} class="sentinel" aria-hidden="true" />;
}

function ColumnChooser(p: { rows: Run[]; columns: Column[]; choose: (c: Column[]) => void }) {
  const [metric, setMetric] = useState("");
  const flip = (c: Column) => p.choose(p.columns.includes(c) ? p.columns.filter((x) => x !== c) : [...p.columns, c]);
  const params = parameterNames(p.rows);
  const metrics = p.columns.filter((c) => c.startsWith("metric:"));
  return (
    <details class="columns">
      <summary>Columns</summary>
      <div class="menu">
        <strong>Parameters</strong>
        {params.length === 0 && <p class="muted">none in the runs listed</p>}
        {params.map((name) => (
          <label key={name}><input type="checkbox" checked={p.columns.includes(`param:${name}`)}
            onChange={() => flip(`param:${name}`)} />{name}</label>
        ))}
        <strong>Metrics (last value)</strong>
        {metrics.map((c) => (
          <label key={c}><input type="checkbox" checked onChange={() => flip(c)} />{c.slice(7)}</label>
        ))}
        <form onSubmit={(e) => { e.preventDefault(); if (metric.trim()) { flip(`metric:${metric.trim()}`); setMetric(""); } }}>
          <input type="text" placeholder="metric name" aria-label="Add a metric column" value={metric}
            onInput={(e) => setMetric((e.currentTarget as HTMLInputElement).value)} />
          <button type="submit">Add</button>
        </form>
      </div>
    </details>
  );
}
