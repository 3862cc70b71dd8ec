/**
 * What a user can do to a run from its page: rename, add or remove tags, cancel, delete.
 * Everything goes through the API (POST …/rename, …/tags, …/cancel, DELETE …), where the
 * server applies the CLI's rules; a refusal shows the server's one-line error as it came.
 */
import { useState } from 'preact/hooks';
import { ApiError, TERMINAL, cancelRun, deleteRun, renameRun, tagRun } from '../api';
import type { Run } from '../api';

function message(e: unknown): string {
  return e instanceof ApiError ? e.detail : String((e as Error)?.message ?? e);
}

export function Actions(props: { run: Run; onRun: (r: Run) => void; onDeleted: () => void }) {
  const r = props.run;
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [name, setName] = useState<string | null>(null);
  const [tag, setTag] = useState('');
  /** Do `work`; whether it was done (a refusal shows the server's line). */
  async function act(work: () => Promise<Run | void>): Promise<boolean> {
    setBusy(true); setError(null);
    try {
      const run = await work();
      if (run) props.onRun(run);
      return true;
    } catch (e) {
      setError(message(e));
      return false;
    } finally {
      setBusy(false);
    }
  }
  const rename = (e: Event) => { e.preventDefault(); if (name) void act(() => renameRun(r.id, name.trim())).then((done) => { if (done) setName(null); }); };
  const addTag = (e: Event) => { e.preventDefault(); if (tag.trim()) void act(() => tagRun(r.id, [tag.trim()])).then((done) => { if (done) setTag(''); }); };
  const remove = () => { if (confirm(`Delete run ${r.name}? This cannot be undone.`)) void act(async () => { await deleteRun(r.id); props.onDeleted(); }); };
  return (
    <div class="run-actions">
      <div class="tags" aria-label="tags">
        {r.tags.map((t) => (
          <span class="tag" key={t}>{t}
            <button type="button" class="tag-remove" aria-label={`remove tag ${t}`} disabled={busy}
                    onClick={() => act(() => tagRun(r.id, [], [t]))}>×</button></span>))}
        <form onSubmit={addTag} class="inline">
          <input value={tag} placeholder="add tag" aria-label="new tag"
                 onInput={(e) => setTag((e.target as HTMLInputElement).value)} />
          <button type="submit" disabled={busy || !tag.trim()}>Tag</button>
        </form>
      </div>
      <div class="buttons">
        {name === null
          ? <button type="button" onClick={() => setName(r.name)}>Rename</button>
          : <form onSubmit={rename} class="inline">
              <input value={name} aria-label="new name" autoFocus
                     onInput={(e) => setName((e.target as HTMLInputElement).value)} />
              <button type="submit" class="primary" disabled={busy}>Save name</button>
              <button type="button" onClick={() => setName(null)}>Keep</button>
            </form>}
        <button type="button" disabled={busy || TERMINAL.has(r.status) || r.status === 'canceling'}
                onClick={() => act(() => cancelRun(r.id))}>Cancel run</button>
        <button type="button" class="danger" disabled={busy} onClick={remove}>Delete</button>
      </div>
      {error && <p class="error" role="alert">{error}</p>}
    </div>
  );
}
