/**
 * A workflow's DAG from what its run stores: the DAG document (internals.dag names its blob,
 * runs of older versions hold it inline), else the steps' own inputs (`from`: the task runs
 * an argument came from). Laid out in layers by longest path, so every edge points down.
 */
import type { Run, Step } from '../api';

export type DagNode = { id: string; task: string; deps: string[] };
export type Placed = DagNode & { layer: number; slot: number };

export async function loadDag(run: Run, steps: Step[]): Promise<DagNode[]> {
  const record = (run.internals?.dag ?? {}) as Record<string, any>;
  try {
    let doc: any = record;
    if (typeof record.blob === 'string' && /^[0-9a-f]{64}$/.test(record.blob)) {  // a digest, nothing else
      const answer = await fetch(`/api/v1/blobs/${encodeURIComponent(record.blob)}`, { credentials: 'same-origin' });
      if (answer.ok) doc = await answer.json();
    }
    if (Array.isArray(doc.nodes) && doc.nodes.length) {
      return doc.nodes.map((n: any) => ({ id: n.id, task: n.task ?? n.id, deps: n.deps ?? [] }));
    }
  } catch { /* fall back to the steps */ }
  return fromSteps(steps);
}

export function fromSteps(steps: Step[]): DagNode[] {
  return steps.map((s) => {
    const meta = (s.metadata ?? {}) as Record<string, any>;
    const deps = new Set<string>();
    for (const doc of Object.values(meta.inputs ?? {}) as any[]) {
      const from = doc?.from;
      if (typeof from === 'string') deps.add(from);
      else if (Array.isArray(from)) from.forEach((f) => deps.add(String(f)));
      else if (from && typeof from === 'object') Object.values(from).forEach((f) => deps.add(String(f)));
    }
    return { id: s.name, task: String(meta.task ?? s.name), deps: Array.from(deps) };
  });
}

export function layout(nodes: DagNode[]): Placed[] {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const layer = new Map<string, number>();
  const depth = (id: string, seen: Set<string>): number => {
    if (layer.has(id)) return layer.get(id) as number;
    if (seen.has(id)) return 0;
    seen.add(id);
    const n = byId.get(id);
    const d = n && n.deps.length ? 1 + Math.max(...n.deps.filter((p) => byId.has(p)).map((p) => depth(p, seen)), -1) : 0;
    layer.set(id, d);
    return d;
  };
  nodes.forEach((n) => depth(n.id, new Set()));
  const slots = new Map<number, number>();
  return nodes.map((n) => {
    const l = layer.get(n.id) ?? 0;
    const slot = slots.get(l) ?? 0;
    slots.set(l, slot + 1);
    return { ...n, layer: l, slot };
  });
}
