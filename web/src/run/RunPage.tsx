/**
 * The page of one run (`#/runs/<id>`), one layout for every kind: a header with its status
 * and the actions, the kind's own part (workflow DAG and timeline, command replicas, recorded
 * run's version and outputs, version's files), then the parts every run has: fields,
 * metrics and system resources as charts, events, artifacts, logs. The status stays live
 * through the run's shared stream (charts/live.ts); a deleted run says so.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, getRun } from '../api';
import type { Run } from '../api';
import { follow } from '../charts/live';
import { Actions } from './Actions';
import { Artifacts } from './Artifacts';
import { Events } from './Events';
import { Fields, Section, duration } from './Fields';
import { Command, Recorded, Version } from './Kinds';
import { Logs } from './Logs';
import { Metrics } from './Metrics';
import { Workflow } from './Workflow';
import './run.css';

export function RunPage(props: { id: string }) {
  const [run, setRun] = useState<Run | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [gone, setGone] = useState(false);
  useEffect(() => {
    setRun(null); setError(null); setGone(false);
    getRun(props.id).then(setRun).catch((e) => setError(e instanceof ApiError ? e.detail : String(e)));
  }, [props.id]);
  const id = run?.id;
  useEffect(() => {
    if (!id) return;
    const changed = (e: Event) => { const r = (e as CustomEvent).detail as Run; if (r.id === id) setRun(r); };
    const removed = (e: Event) => { if ((e as CustomEvent).detail.id === id) setGone(true); };
    window.addEventListener('runyard:run', changed);
    window.addEventListener('runyard:removed', removed);
    const stop = follow(id, 'logs', { status: setRun, end: (s) => { if (s === 'removed') setGone(true); } });
    return () => { stop(); window.removeEventListener('runyard:run', changed); window.removeEventListener('runyard:removed', removed); };
  }, [id]);
  if (gone) return <main class="page run-page"><h1>Run deleted</h1><p>This run no longer exists. <a href="#/">Back to the runs</a></p></main>;
  if (error) return <main class="page run-page"><h1>Run {props.id}</h1><p class="error" role="alert">{error}</p><a href="#/">Back to the runs</a></main>;
  if (!run) return <main class="page run-page"><p class="muted">loading…</p></main>;
  return (
    <main class="page run-page" data-run={run.id} data-status={run.status} data-kind={run.kind}>
      <header class="run-head">
        <h1><span class="run-name">{run.name}</span>
          <span class={`badge status-${run.status}`} aria-label={`status ${run.status}`}>{run.status}</span>
          <span class="badge kind">{run.kind}</span></h1>
        <p class="muted">{run.id} · {run.folder} · {duration(run)}{run.status_reason ? ` · ${run.status_reason}` : ''}</p>
        {run.description && <p>{run.description}</p>}
        <Actions run={run} onRun={setRun} onDeleted={() => setGone(true)} />
      </header>
      {run.kind === 'workflow' && <Workflow run={run} />}
      {run.kind === 'command' && <Command run={run} />}
      {run.kind === 'recorded' && <Recorded run={run} />}
      {(run.kind as string) === 'version' && <Version run={run} />}
      <Fields run={run} />
      <Metrics run={run} />
      <Events id={run.id} />
      {run.kind !== 'recorded' && <Artifacts id={run.id} />}
      <Section title="Logs" id="logs"><Logs id={run.id} /></Section>
    </main>
  );
}
