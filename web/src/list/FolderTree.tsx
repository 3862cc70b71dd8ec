// The folder tree beside the list: the folders of the runs listed so far (and their parents),
// nested; choosing one filters the list to it and everything below it.
import type { Run } from "../api";

interface Node { path: string; name: string; count: number; children: Map<string, Node> }

export function buildTree(rows: Run[], chosen: string): Node {
  const root: Node = { path: "/", name: "all folders", count: 0, children: new Map() };
  const add = (folder: string, n: number) => {
    let node = root;
    node.count += n;
    for (const part of folder.split("/").filter(Boolean)) {
      const path = node.path === "/" ? `/${part}` : `${node.path}/${part}`;
      let next = node.children.get(part);
      if (!next) { next = { path, name: part, count: 0, children: new Map() }; node.children.set(part, next); }
      next.count += n;
      node = next;
    }
  };
  rows.forEach((r) => add(r.folder || "/", 1));
  if (chosen) add(chosen, 0);
  return root;
}

export function FolderTree(props: { rows: Run[]; chosen: string; choose: (f: string) => void }) {
  const root = buildTree(props.rows, props.chosen);
  return (
    <nav class="folders" aria-label="Folders">
      <ul>{branch(root, props.chosen || "/", props.choose)}</ul>
      <p class="muted small">Folders of the runs listed.</p>
    </nav>
  );
}

function branch(node: Node, chosen: string, choose: (f: string) => void) {
  const kids = [...node.children.values()].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <li key={node.path}>
      <button type="button" class={node.path === chosen ? "folder chosen" : "folder"}
        aria-current={node.path === chosen ? "true" : undefined}
        onClick={() => choose(node.path === "/" ? "" : node.path)}>
        {node.name} <span class="muted">{node.count || ""}</span>
      </button>
      {kids.length > 0 && <ul>{kids.map((k) => branch(k, chosen, choose))}</ul>}
    </li>
  );
}
