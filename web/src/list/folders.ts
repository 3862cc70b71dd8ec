// The folder tree's data: how many matching runs lie in each folder (GET /api/v1/folders, with
// the list's filters but its folder), nested into a tree whose counts are summed over each
// subtree; fetched once the list's rows are in (never racing them), again when the filters
// change, and when the live stream brings a run in a folder the tree does not know.
import { useEffect, useRef, useState } from "preact/hooks";
import { folderCounts, type Run, type RunFilter } from "../api";

export interface Node { path: string; name: string; count: number; children: Node[] }

const REFRESH_GAP = 2000; // ms: the stream asks for a fresh tree at most this often

/** The tree of ``counts`` (folder -> runs directly in it), with ``chosen`` shown even when it
 * holds no run; a node's count is its subtree's. */
export function buildTree(counts: Record<string, number>, chosen: string): Node {
  const root: Node = { path: "/", name: "all folders", count: 0, children: [] };
  const add = (folder: string, n: number) => {
    let node = root;
    node.count += n;
    for (const part of folder.split("/").filter(Boolean)) {
      const path = node.path === "/" ? `/${part}` : `${node.path}/${part}`;
      let next = node.children.find((c) => c.name === part);
      if (!next) { next = { path, name: part, count: 0, children: [] }; node.children.push(next); }
      next.count += n;
      node = next;
    }
  };
  Object.entries(counts).forEach(([folder, n]) => add(folder, n));
  if (chosen) add(chosen, 0);
  const order = (node: Node) => {
    node.children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    node.children.forEach(order);
  };
  order(root);
  return root;
}

export interface Folders {
  counts: Record<string, number> | null; error: string | null;
  /** Tell the tree of runs the stream brought: one in an unknown folder refreshes it. */
  notice: (runs: Run[]) => void;
}

/** The folder counts for ``filter`` (whose identity is ``key``), asked for after each new
 * listing (``generation``) when the filter changed since the last ask. */
export function useFolders(filter: RunFilter, key: string, generation: number): Folders {
  const [counts, setCounts] = useState<Record<string, number> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const asked = useRef<string | null>(null);
  const known = useRef<Record<string, number> | null>(null);
  const tried = useRef<Set<string>>(new Set());
  const last = useRef(0);
  const abort = useRef<AbortController | null>(null);
  const timer = useRef(0);
  const current = useRef(filter);
  current.current = filter;

  const load = () => {
    abort.current?.abort();
    const now = new AbortController();
    abort.current = now;
    last.current = Date.now();
    folderCounts(current.current, now.signal).then((found) => {
      if (now.signal.aborted) return;
      known.current = found;
      setCounts(found); setError(null);
    }).catch((e) => {
      if (!now.signal.aborted) setError(e instanceof Error ? e.message : String(e));
    });
  };

  useEffect(() => {
    if (generation === 0 || asked.current === key) return;
    asked.current = key;
    tried.current = new Set();
    load();
  }, [generation]);
  useEffect(() => () => { abort.current?.abort(); window.clearTimeout(timer.current); }, []);

  const notice = (runs: Run[]) => {
    const have = known.current;
    if (!have) return; // (the tree's first answer is on its way)
    const unknown = runs.map((r) => r.folder || "/")
      .filter((f) => !(f in have) && !tried.current.has(f));
    if (!unknown.length) return;
    unknown.forEach((f) => tried.current.add(f)); // asked once each: never a refresh loop
    const wait = REFRESH_GAP - (Date.now() - last.current);
    if (wait <= 0) load();
    else if (!timer.current) {
      timer.current = window.setTimeout(() => { timer.current = 0; load(); }, wait);
    }
  };
  return { counts, error, notice };
}
