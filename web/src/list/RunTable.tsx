// The table of runs: one row per run, keyboard-navigable (↑/↓ or j/k move, Enter opens,
// Space or x selects for comparison, Home/End), with rename and delete on each row. A
// sortable column's header sorts the list on the server (again: the other direction); a
// running run's duration ticks every second (one timer for the table: shell/tick.ts).
import { useRef, useState } from "preact/hooks";
import { deleteRun, renameRun, type Run } from "../api";
import { duration, show, when } from "../shell/format";
import { go, runHref } from "../shell/route";
import { useTick } from "../shell/tick";
import { columnLabel, type Column, type Summaries } from "./columns";

export interface TableProps {
  rows: Run[]; fresh: Set<string>; columns: Column[]; summaries: Summaries;
  selected: Set<string>; toggle: (id: string) => void;
  sort: string; descending: boolean; sortBy: (k: string) => void;
  onEnd: () => void; report: (message: string, bad?: boolean) => void;
}

/** The fixed columns: the order each sorts by (null: not sortable) and its label. */
const HEADS: [string | null, string, string][] = [["status", "Status", "status"],
  ["kind", "Kind", "kind"], ["name", "Name", "name"], [null, "Folder", "folder"],
  ["created", "Created", "created"], ["started", "Started", "started"],
  ["duration", "Duration", "duration"]];
const METRIC_UNSORTED = "Not sortable: sorting by a metric would need every run's series " +
  "(left for later)";

export function RunTable(props: TableProps) {
  const body = useRef<HTMLTableSectionElement>(null);
  const [focus, setFocus] = useState(0);
  const move = (to: number) => {
    const n = props.rows.length;
    if (!n) return;
    const at = Math.max(0, Math.min(n - 1, to));
    setFocus(at);
    (body.current?.children[at] as HTMLElement | undefined)?.focus();
    if (at >= n - 5) props.onEnd();
  };
  const keys = (e: KeyboardEvent) => {
    if ((e.target as HTMLElement).closest("input, button, a, select")) return;
    const run = props.rows[focus];
    const acts: Record<string, () => void> = {
      ArrowDown: () => move(focus + 1), j: () => move(focus + 1),
      ArrowUp: () => move(focus - 1), k: () => move(focus - 1),
      Home: () => move(0), End: () => move(props.rows.length - 1),
      Enter: () => run && go(runHref(run.id)),
      " ": () => run && props.toggle(run.id), x: () => run && props.toggle(run.id),
    };
    const act = acts[e.key];
    if (act) { e.preventDefault(); act(); }
  };
  return (
    <table class="runs" aria-label="Runs" aria-rowcount={props.rows.length}>
      <thead><tr>
        <th scope="col"><span class="sr">Select</span></th>
        {HEADS.map(([key, label, name]) => <Head key={name} k={key} label={label} {...props} />)}
        <th scope="col">Tags</th>
        {props.columns.map((c) => <Head key={c} k={c.startsWith("param:") ? c : null}
          label={columnLabel(c)} title={c.startsWith("metric:") ? METRIC_UNSORTED : undefined} {...props} />)}
        <th scope="col"><span class="sr">Actions</span></th>
      </tr></thead>
      <tbody ref={body} onKeyDown={keys}>
        {props.rows.map((run, i) => (
          <Row key={run.id} run={run} index={i} focused={i === focus} props={props}
            onFocus={() => setFocus(i)} />
        ))}
      </tbody>
    </table>
  );
}

/** A column's header: a button that sorts by ``k`` (none when ``k`` is null). */
function Head(p: TableProps & { k: string | null; label: string; title?: string }) {
  if (p.k === null) return <th scope="col" title={p.title}>{p.label}</th>;
  const k = p.k;
  const sorted = p.sort === k;
  const next = !sorted ? "Sort by this column" : `Sort ${p.descending ? "ascending" : "descending"}`;
  return (
    <th scope="col" aria-sort={sorted ? (p.descending ? "descending" : "ascending") : "none"}
      data-sort={k}>
      <button type="button" class="sort" title={next} onClick={() => p.sortBy(k)}>
        {p.label}<span class="arrow" aria-hidden="true">{sorted ? (p.descending ? " ▾" : " ▴") : ""}</span>
      </button>
    </th>
  );
}

function Row(p: { run: Run; index: number; focused: boolean; props: TableProps; onFocus: () => void }) {
  const { run, props } = p;
  const chosen = props.selected.has(run.id);
  const classes = ["run", chosen && "selected", props.fresh.has(run.id) && "fresh"].filter(Boolean);
  return (
    <tr class={classes.join(" ")} tabIndex={p.focused ? 0 : -1} data-id={run.id}
      aria-selected={chosen} onFocus={p.onFocus}>
      <td><input type="checkbox" checked={chosen} aria-label={`Select ${run.name}`}
        tabIndex={-1} onChange={() => props.toggle(run.id)} /></td>
      <td><span class={`badge status-${run.status}`} title={run.status_reason || undefined}>{run.status}</span></td>
      <td class="kind">{run.kind}</td>
      <td class="name"><Name run={run} report={props.report} /></td>
      <td class="folder">{run.folder}</td>
      <td class="time created">{when(run.created)}</td>
      <td class="time started">{when(run.started)}</td>
      <Duration run={run} />
      <td class="tags">{run.tags.map((t) => <span key={t} class="tag">{t}</span>)}</td>
      {props.columns.map((c) => <td key={c} class="num">{cell(run, c, props.summaries)}</td>)}
      <td class="actions"><Delete run={run} report={props.report} /></td>
    </tr>
  );
}

/** How long the run ran, ticking each second while it runs. */
function Duration(p: { run: Run }) {
  const { run } = p;
  const now = useTick(run.started !== null && run.ended === null &&
    (run.status === "running" || run.status === "canceling"));
  return <td class="num duration">{duration(run, now)}</td>;
}

function cell(run: Run, c: Column, summaries: Summaries): string {
  const name = columnLabel(c);
  if (c.startsWith("param:")) return show(run.parameters?.[name]);
  const found = summaries.get(run.id)?.get(name);
  return found ? show(found.last) : "";
}

/** The run's name, a link to its page; "Rename" turns it into a text box (Enter saves). */
function Name(p: { run: Run; report: TableProps["report"] }) {
  const [editing, setEditing] = useState(false);
  const save = (name: string) => {
    setEditing(false);
    if (!name.trim() || name === p.run.name) return;
    renameRun(p.run.id, name.trim()).then((r) => p.report(`renamed to ${r.name}`))
      .catch((e) => p.report(`rename failed: ${e.message}`, true));
  };
  if (editing) {
    return (
      <input class="rename" aria-label={`New name for ${p.run.name}`} defaultValue={p.run.name} ref={focusOnce}
        onKeyDown={(e) => {
          if (e.key === "Enter") save((e.currentTarget as HTMLInputElement).value);
          if (e.key === "Escape") setEditing(false);
        }} onBlur={() => setEditing(false)} />
    );
  }
  return (
    <>
      <a href={runHref(p.run.id)}>{p.run.name}</a>
      <button type="button" class="link" aria-label={`Rename ${p.run.name}`} onClick={() => setEditing(true)}>rename</button>
    </>
  );
}

/** Delete, asked twice: the button becomes "Delete? yes / no". */
function Delete(p: { run: Run; report: TableProps["report"] }) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return <button type="button" class="link bad" aria-label={`Delete ${p.run.name}`}
      onClick={() => setAsking(true)}>delete</button>;
  }
  const yes = () => {
    setAsking(false);
    deleteRun(p.run.id).then(() => p.report(`deleted ${p.run.name}`))
      .catch((e) => p.report(`delete failed: ${e.message}`, true));
  };
  return (
    <span class="confirm">Delete?{" "}
      <button type="button" class="bad" ref={focusOnce} onClick={yes}>yes</button>{" "}
      <button type="button" onClick={() => setAsking(false)}>no</button>
    </span>
  );
}

/** Focus an element when it appears (a stable ref callback: called once per element). */
function focusOnce(el: HTMLElement | null): void { el?.focus(); }
