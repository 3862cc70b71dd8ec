/**
 * What only some kinds of run have. Command runs: their replicas (steps with attempts and
 * exit status), buffers and codespec. Recorded runs: the version they ran, the entrypoint,
 * inputs and outputs as trees, the environment key, the exit code and the run they reproduce
 * (origin). Versions: the workspace, the number of files and the runs recorded from them.
 */
import { useEffect, useState } from 'preact/hooks';
import { getArtifacts, getRun, versionRuns } from '../api';
import type { Artifact, Run } from '../api';
import { Artifacts, useArtifacts } from './Artifacts';
import { KeyValues, Section, when } from './Fields';
import { useSteps } from './Workflow';

function runLink(id: unknown) {
  return typeof id === 'string' && id ? <a href={`#/runs/${encodeURIComponent(id)}`}>{id}</a> : <span class="muted">—</span>;
}

export function Command(props: { run: Run }) {
  const steps = useSteps(props.run);
  const p = props.run.parameters as Record<string, any>;
  const spec = p.spec ?? {};
  return (
    <>
      <Section title="Command" id="command">
        <KeyValues label="command" data={{
          codespec: p.codespec ?? spec.name, command: spec.command, image: spec.image,
          replicas: p.replicas, timeout: p.timeout, exit: props.run.status_reason ?? props.run.status,
        }} />
        <h3>Buffers</h3>
        <KeyValues label="buffers" data={Object.fromEntries(Object.entries(p.buffers ?? {}).map(([k, v]) => [
          `${(spec.buffers?.outputs ?? []).includes(k) ? 'output' : 'input'} ${k}`, v]))} />
      </Section>
      <Section title={`Replicas${steps ? ` (${steps.length})` : ''}`} id="replicas">
        {!steps ? <p class="muted">loading…</p> : steps.length === 0 ? <p class="muted">none started</p> : (
          <table class="grid replicas">
            <thead><tr><th>replica</th><th>status</th><th>started</th><th>ended</th><th>exit code</th><th>outcome</th><th>pid</th></tr></thead>
            <tbody>{steps.map((s: any) => {
              const a = (s.attempts ?? [])[(s.attempts ?? []).length - 1] ?? {};
              const code = a.outputs?.exit_code;
              return (
                <tr key={s.name} data-replica={s.name}><td>{s.name}</td><td class={`status-${a.status ?? s.status}`}>{a.status ?? s.status}</td>
                  <td>{when(a.started)}</td><td>{when(a.ended)}</td><td class="exit-code">{code ?? '—'}</td>
                  <td>{a.message ?? '—'}</td><td>{s.metadata?.pid ?? '—'}</td></tr>);
            })}</tbody>
          </table>)}
      </Section>
    </>);
}

export function Recorded(props: { run: Run }) {
  const r = props.run;
  const i = (r.internals ?? {}) as Record<string, any>;
  const list = useArtifacts(r.id);
  return (
    <>
      <Section title="Recording" id="recording">
        <KeyValues label="recording" data={{
          version: runLink(i.version), entrypoint: Array.isArray(i.entrypoint) ? i.entrypoint.join(' ') : i.entrypoint,
          executor: i.executor, network: i.network, environment: i.env, 'exit code': i.exit_code,
          outputs: i.outputs, skipped: i.skipped, folder: i.folder, workspace: i.workspace,
          'reproduces': r.origin ? runLink(r.origin) : null,
        }} />
      </Section>
      {r.origin && list && <Reproduction run={r} outputs={list} />}
      <Artifacts id={r.id} title="Inputs" stage="get" list={list} />
      <Artifacts id={r.id} title="Outputs" stage="put" list={list} />
    </>);
}

export function Version(props: { run: Run }) {
  const i = (props.run.internals ?? {}) as Record<string, any>;
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    setRuns(null); setFailed(null);
    versionRuns(props.run.id).then((found) => setRuns(found.runs))
      .catch((e) => { setFailed(String(e?.message ?? e)); setRuns([]); });
  }, [props.run.id]);
  return (
    <Section title="Version" id="version">
      <KeyValues label="version" data={{ workspace: i.workspace, files: i.files, bytes: i.bytes, manifest: i.manifest }} />
      <h3>Runs recorded from it</h3>
      {runs === null ? <p class="muted">loading…</p> : failed ? <p class="muted">{failed}</p> : runs.length === 0 ? <p class="muted">none yet</p> : (
        <ul class="version-runs">{runs.map((r) => (
          <li key={r.id} data-run-link={r.id}><a href={`#/runs/${encodeURIComponent(r.id)}`}>{r.name}</a>
            {' '}<span class={`status-${r.status}`}>{r.status}</span>{r.origin ? <span class="muted"> (reproduces {r.origin})</span> : null}</li>))}</ul>)}
    </Section>);
}

/** Per output file: identical (same SHA-256), differ, missing (only the original has it) or
 * new, and whether the environment's lock and the status are the same, as `runyard
 * reproduce` reports it. */
export function compareOutputs(before: Artifact[], after: Artifact[]): Record<string, string> {
  const put = (l: Artifact[]) => new Map(l.filter((a) => a.stage === 'put').map((a) => [a.name, a.hash]));
  const a = put(before), b = put(after);
  const out: Record<string, string> = {};
  for (const [name, hash] of a) out[name] = !b.has(name) ? 'missing' : b.get(name) === hash ? 'identical' : 'differ';
  for (const name of b.keys()) if (!a.has(name)) out[name] = 'new';
  return out;
}

function Reproduction(props: { run: Run; outputs: Artifact[] }) {
  const [first, setFirst] = useState<{ run: Run; list: Artifact[] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const origin = props.run.origin as string;
  useEffect(() => {
    Promise.all([getRun(origin), getArtifacts(origin)])
      .then(([run, list]) => setFirst({ run, list })).catch((e) => setError(String(e.message ?? e)));
  }, [origin]);
  if (error) return <Section title="Reproduce result" id="reproduce"><p class="error">{error}</p></Section>;
  if (!first) return null;
  const files = compareOutputs(first.list, props.outputs);
  const sameEnv = (first.run.environment as any)?.lock === (props.run.environment as any)?.lock;
  const same = Object.values(files).every((v) => v === 'identical') && sameEnv && first.run.status === props.run.status;
  return (
    <Section title="Reproduce result" id="reproduce">
      <p class={same ? 'status-succeeded' : 'status-failed'} data-identical={String(same)}>
        {same ? 'identical: every output file, the status and the environment are the same'
              : 'differs from the original run'}</p>
      <KeyValues label="reproduce result" data={{ status: `${first.run.status} → ${props.run.status}`,
        'same environment': sameEnv, ...files }} />
    </Section>);
}
