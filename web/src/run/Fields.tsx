/**
 * The parts every run has, shown the same for every kind: its fields, tags, metadata,
 * parameters, code identity and environment. Values of any shape (nested dicts, lists) are
 * shown as nested tables, long lists folded, so a run with 500 packages stays readable.
 */
import { isValidElement } from 'preact';
import { useState } from 'preact/hooks';
import type { Run } from '../api';

export function when(t: number | null | undefined): string {
  return t ? new Date(t * 1000).toLocaleString() : '—';
}

export function duration(run: Run): string {
  if (!run.started) return '—';
  const s = (run.ended ?? Date.now() / 1000) - run.started;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function Value(props: { value: unknown }) {
  const v = props.value;
  if (v === null || v === undefined) return <span class="muted">—</span>;
  if (isValidElement(v)) return v;
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x !== 'object' || x === null)) return <span>{v.map(String).join(', ')}</span>;
    return <ol class="kv-list">{v.map((x, i) => <li key={i}><Value value={x} /></li>)}</ol>;
  }
  if (typeof v === 'object') return <KeyValues data={v as Record<string, unknown>} />;
  return <span class="kv-scalar">{String(v)}</span>;
}

/** A two-column table of `data`; more than `fold` rows fold behind a button. */
export function KeyValues(props: { data: Record<string, unknown> | null | undefined; fold?: number; label?: string }) {
  const [open, setOpen] = useState(false);
  const rows = Object.entries(props.data ?? {});
  if (!rows.length) return <p class="muted">none</p>;
  const fold = props.fold ?? 40;
  const shown = open ? rows : rows.slice(0, fold);
  return (
    <div>
      <table class="kv" aria-label={props.label}>
        <tbody>{shown.map(([k, v]) => <tr key={k}><th scope="row">{k}</th><td><Value value={v} /></td></tr>)}</tbody>
      </table>
      {rows.length > fold && <button type="button" onClick={() => setOpen(!open)}>
        {open ? 'show fewer' : `show all ${rows.length}`}</button>}
    </div>
  );
}

export function Section(props: { title: string; id?: string; children: any; open?: boolean }) {
  return (
    <details class="run-section" id={props.id} open={props.open ?? true}>
      <summary><h2>{props.title}</h2></summary>
      <div class="run-section-body">{props.children}</div>
    </details>
  );
}

export function Fields(props: { run: Run }) {
  const r = props.run;
  const fields: Record<string, unknown> = {
    id: r.id, name: r.name, kind: r.kind, status: r.status, reason: r.status_reason,
    folder: r.folder, description: r.description, created: when(r.created),
    started: when(r.started), ended: when(r.ended), duration: duration(r),
    origin: r.origin, owner: r.owner,
  };
  return (
    <div class="run-fields">
      <Section title="Fields" id="fields"><KeyValues data={fields} label="fields" /></Section>
      <Section title="Parameters" id="parameters"><KeyValues data={r.parameters} label="parameters" /></Section>
      <Section title="Metadata" id="metadata"><KeyValues data={r.metadata} label="metadata" /></Section>
      <Section title="Code" id="code" open={false}><KeyValues data={r.code} label="code" /></Section>
      <Section title="Environment" id="environment" open={false}>
        <KeyValues data={r.environment} label="environment" fold={20} /></Section>
      <Section title="Configuration" id="config" open={false}><KeyValues data={r.config} label="config" /></Section>
    </div>
  );
}
