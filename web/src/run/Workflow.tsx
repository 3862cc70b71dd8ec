/**
 * A workflow run's own parts: its DAG as a graph (nodes coloured by the task run's status,
 * click one to open it), its task runs on a timeline (each attempt a bar), and the chosen
 * task run's attempts, arguments, output and logs. Steps are asked again while the run runs.
 */
import { useEffect, useState } from 'preact/hooks';
import { TERMINAL, getSteps } from '../api';
import type { Run, Step } from '../api';
import { DagNode, Placed, layout, loadDag } from './dag';
import { KeyValues, Section, when } from './Fields';
import { Logs } from './Logs';

const W = 150, H = 34, GX = 30, GY = 46;

export function useSteps(run: Run): Step[] | null {
  const [steps, setSteps] = useState<Step[] | null>(null);
  const running = !TERMINAL.has(run.status);
  useEffect(() => {
    let live = true;
    const load = () => getSteps(run.id).then((s) => { if (live) setSteps(s); }).catch(() => { if (live) setSteps([]); });
    void load();
    const timer = running ? window.setInterval(load, 2000) : 0;
    return () => { live = false; clearInterval(timer); };
  }, [run.id, running, run.status]);
  return steps;
}

export function Workflow(props: { run: Run }) {
  const steps = useSteps(props.run);
  const [nodes, setNodes] = useState<DagNode[] | null>(null);
  const [chosen, setChosen] = useState<string | null>(null);
  const count = steps?.length ?? 0;
  useEffect(() => { if (steps) loadDag(props.run, steps).then(setNodes); }, [props.run.id, count]);
  if (!steps || !nodes) return <Section title="Workflow" id="workflow"><p class="muted">loading…</p></Section>;
  const byName = new Map(steps.map((s) => [s.name, s]));
  const step = chosen ? byName.get(chosen) : undefined;
  return (
    <>
      <Section title={`DAG (${nodes.length} task runs)`} id="dag">
        <DagGraph nodes={layout(nodes)} steps={byName} chosen={chosen} onChoose={setChosen} />
      </Section>
      <Section title="Timeline" id="timeline"><Timeline steps={steps} chosen={chosen} onChoose={setChosen} /></Section>
      {step && <TaskRun run={props.run} step={step} />}
    </>
  );
}

function statusOf(step: Step | undefined): string {
  return String(step?.status ?? 'pending');
}

function DagGraph(props: { nodes: Placed[]; steps: Map<string, Step>; chosen: string | null; onChoose: (id: string) => void }) {
  const at = new Map(props.nodes.map((n) => [n.id, n]));
  const width = Math.max(...props.nodes.map((n) => n.slot + 1), 1) * (W + GX);
  const height = Math.max(...props.nodes.map((n) => n.layer + 1), 1) * (H + GY);
  const pos = (n: Placed) => ({ x: n.slot * (W + GX) + GX / 2, y: n.layer * (H + GY) + GY / 4 });
  return (
    <div class="dag-wrap">
      <svg class="dag" width={width} height={height} role="group" aria-label="workflow graph">
        {props.nodes.flatMap((n) => n.deps.filter((d) => at.has(d)).map((d) => {
          const a = pos(at.get(d) as Placed), b = pos(n);
          return <path key={`${d}>${n.id}`} class="dag-edge" data-edge={`${d}>${n.id}`}
                       d={`M${a.x + W / 2},${a.y + H} C${a.x + W / 2},${a.y + H + GY / 2} ${b.x + W / 2},${b.y - GY / 2} ${b.x + W / 2},${b.y}`} />;
        }))}
        {props.nodes.map((n) => {
          const p = pos(n), status = statusOf(props.steps.get(n.id));
          return (
            <g key={n.id} class={`dag-node status-${status}${props.chosen === n.id ? ' chosen' : ''}`} data-node={n.id}
               transform={`translate(${p.x},${p.y})`} tabIndex={0} role="button" aria-label={`task run ${n.id}: ${status}`}
               onClick={() => props.onChoose(n.id)} onKeyDown={(e) => { if (e.key === 'Enter' || e.key === ' ') props.onChoose(n.id); }}>
              <rect width={W} height={H} rx={6} />
              <text x={8} y={14}>{n.id.length > 20 ? `${n.id.slice(0, 19)}…` : n.id}</text>
              <text x={8} y={28} class="dag-sub">{status}</text>
            </g>);
        })}
      </svg>
    </div>);
}

function Timeline(props: { steps: Step[]; chosen: string | null; onChoose: (id: string) => void }) {
  const attempts = props.steps.flatMap((s) => ((s.attempts ?? []) as any[]).map((a) => ({ step: s.name, ...a })));
  const starts = attempts.map((a) => a.started).filter((t): t is number => typeof t === 'number');
  if (!starts.length) return <p class="muted">no attempt has started</p>;
  const t0 = Math.min(...starts);
  const now = Date.now() / 1000;
  const t1 = Math.max(...attempts.map((a) => a.ended ?? (a.started ? now : t0)), t0 + 1e-3);
  const pct = (t: number) => `${((t - t0) / (t1 - t0)) * 100}%`;
  return (
    <div class="timeline" role="list">
      <div class="muted">{(t1 - t0).toFixed(3)} s from {when(t0)}</div>
      {props.steps.map((s) => (
        <div key={s.name} role="listitem" class={`tl-row${props.chosen === s.name ? ' chosen' : ''}`} data-step={s.name}>
          <button type="button" class="tl-name" onClick={() => props.onChoose(s.name)}>{s.name}</button>
          <div class="tl-track">
            {((s.attempts ?? []) as any[]).filter((a) => a.started).map((a) => (
              <span key={a.number} class={`tl-bar status-${a.status}`} title={`attempt ${a.number}: ${a.status}${a.message ? ` — ${a.message}` : ''}`}
                    style={{ left: pct(a.started), width: `max(2px, calc(${pct(a.ended ?? now)} - ${pct(a.started)}))` }} />))}
          </div>
        </div>))}
    </div>);
}

function TaskRun(props: { run: Run; step: Step }) {
  const s = props.step as any;
  const meta = s.metadata ?? {};
  const args: Record<string, unknown> = {};
  for (const [k, doc] of Object.entries(meta.inputs ?? {}) as [string, any][]) {
    args[k] = doc?.from ? `from ${Array.isArray(doc.from) ? doc.from.join(', ') : JSON.stringify(doc.from)}` : doc?.repr ?? doc?.digest;
  }
  const attempts = (s.attempts ?? []).map((a: any) => ({
    attempt: a.number, status: a.status, started: when(a.started), ended: when(a.ended),
    duration: a.duration == null ? null : `${a.duration.toFixed(3)} s`, message: a.message,
  }));
  return (
    <Section title={`Task run ${s.name}`} id="task-run">
      <KeyValues data={{ task: meta.task, status: s.status, kind: s.kind, reused_from: meta.reused_from }} />
      <h3>Arguments</h3><KeyValues data={args} label="arguments" />
      <h3>Output</h3><KeyValues data={{ output: meta.output?.repr ?? meta.output?.digest ?? null }} label="output" />
      <h3>Attempts</h3>
      <table class="grid"><thead><tr>{['attempt', 'status', 'started', 'ended', 'duration', 'message'].map((k) => <th key={k}>{k}</th>)}</tr></thead>
        <tbody>{attempts.map((a: any) => <tr key={a.attempt}>{Object.values(a).map((v, i) => <td key={i}>{v == null ? '—' : String(v)}</td>)}</tr>)}</tbody></table>
      <h3>Logs</h3><Logs id={props.run.id} step={s.name} label={`logs of ${s.name}`} />
    </Section>);
}
