// The filters above the runs list: text (the name), status, kind, tags, time; "/" focuses
// the text box from anywhere in the list.
import { useEffect, useRef, useState } from "preact/hooks";
import { KINDS, STATUSES, type Kind, type Status } from "../api";
import type { ListFilter, Since } from "./filters";

const value = (e: Event) => (e.currentTarget as HTMLInputElement).value;

export function FilterBar(props: { filter: ListFilter; set: (f: Partial<ListFilter>) => void }) {
  const { filter, set } = props;
  const text = useRef<HTMLInputElement>(null);
  useEffect(() => {
    const slash = (e: KeyboardEvent) => {
      const typing = (e.target as HTMLElement).closest?.("input, textarea, select");
      if (e.key === "/" && !typing) { e.preventDefault(); text.current?.focus(); }
    };
    window.addEventListener("keydown", slash);
    return () => window.removeEventListener("keydown", slash);
  }, []);
  const toggle = (s: Status) => set({ status: filter.status.includes(s)
    ? filter.status.filter((x) => x !== s) : [...filter.status, s] });
  return (
    <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
      <input ref={text} type="search" name="q" placeholder="Filter by name  ( / )"
        aria-label="Filter by name" value={filter.q} onInput={(e) => set({ q: value(e) })} />
      <fieldset class="statuses" aria-label="Status">
        {STATUSES.map((s) => (
          <label key={s} class={`chip status-${s}`}>
            <input type="checkbox" name="status" value={s} checked={filter.status.includes(s)}
              onChange={() => toggle(s)} />{s}
          </label>
        ))}
      </fieldset>
      <select name="kind" aria-label="Kind" value={filter.kind}
        onChange={(e) => set({ kind: value(e) as Kind | "" })}>
        <option value="">every kind</option>
        {KINDS.map((k) => <option key={k} value={k}>{k}</option>)}
      </select>
      <Draft name="tag" placeholder="tags: a, b" label="Filter by tags" value={filter.tag}
        apply={(tag) => set({ tag })} />
      <Draft name="folder" placeholder="folder: /a/b" label="Filter by folder"
        value={filter.folder} apply={(text) => set({ folder: folderOf(text) })} />
      <select name="since" aria-label="Started within" value={filter.since}
        onChange={(e) => set({ since: value(e) as Since })}>
        <option value="">any time</option>
        <option value="1h">last hour</option>
        <option value="24h">last 24 hours</option>
        <option value="7d">last 7 days</option>
        <option value="30d">last 30 days</option>
      </select>
    </form>
  );
}

/** A text box applied on Enter or when left: what is typed is kept across re-renders. */
function Draft(p: { name: string; placeholder: string; label: string; value: string;
  apply: (text: string) => void }) {
  const [text, setText] = useState(p.value);
  useEffect(() => setText(p.value), [p.value]);
  return <input type="text" name={p.name} placeholder={p.placeholder} aria-label={p.label}
    value={text} onInput={(e) => setText(value(e))} onChange={(e) => p.apply(value(e))} />;
}

/** A folder as the API takes it: `/a/b` (a leading slash added, a trailing one dropped). */
export function folderOf(text: string): string {
  const t = text.trim().replace(/\/+$/, "");
  if (!t) return "";
  return t.startsWith("/") ? t : `/${t}`;
}
