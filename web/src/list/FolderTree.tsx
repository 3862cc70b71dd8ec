// The folder tree beside the list: every folder holding runs that match the list's other
// filters, nested, with the runs in each subtree; choosing one filters the list to it and
// everything below it. A tree by the WAI-ARIA pattern: one tab stop; ↑/↓ move, → opens or
// goes to the first child, ← closes or goes to the parent, Home/End, Enter or Space chooses.
import { useRef, useState } from "preact/hooks";
import { buildTree, type Folders, type Node } from "./folders";

const SMALL = 40; // a tree of at most this many folders opens whole

interface Item { node: Node; depth: number; parent: string | null; open: boolean }

export function FolderTree(props: { folders: Folders; chosen: string; choose: (f: string) => void }) {
  const { counts, error } = props.folders;
  const chosen = props.chosen || "/";
  const [toggled, setToggled] = useState<Map<string, boolean>>(new Map());
  const [focus, setFocus] = useState<string | null>(null);
  const tree = useRef<HTMLDivElement>(null);
  if (!counts) {
    return (
      <nav class="folders" aria-label="Folders">
        <p class="muted small">{error ? `Folders unavailable: ${error}` : "Loading folders…"}</p>
      </nav>
    );
  }
  const root = buildTree(counts, props.chosen);
  const small = Object.keys(counts).length <= SMALL;
  const isOpen = (n: Node, depth: number) => toggled.get(n.path) ??
    (small || depth === 0 || chosen.startsWith(n.path === "/" ? "/" : `${n.path}/`));
  const items = visible(root, isOpen);
  const at = Math.max(0, items.findIndex((i) => i.node.path === (focus ?? chosen)));
  const moveTo = (i: number) => {
    const to = Math.max(0, Math.min(items.length - 1, i));
    setFocus(items[to].node.path);
    (tree.current?.children[to] as HTMLElement | undefined)?.focus();
  };
  const flip = (item: Item, open: boolean) =>
    setToggled((t) => new Map(t).set(item.node.path, open));
  const pick = (node: Node) => { setFocus(node.path); props.choose(node.path === "/" ? "" : node.path); };
  const keys = (e: KeyboardEvent) => {
    const item = items[at];
    const acts: Record<string, () => void> = {
      ArrowDown: () => moveTo(at + 1), ArrowUp: () => moveTo(at - 1),
      Home: () => moveTo(0), End: () => moveTo(items.length - 1),
      ArrowRight: () => item.node.children.length &&
        (item.open ? moveTo(at + 1) : flip(item, true)),
      ArrowLeft: () => (item.open && item.node.children.length ? flip(item, false)
        : item.parent !== null && moveTo(items.findIndex((i) => i.node.path === item.parent))),
      Enter: () => pick(item.node), " ": () => pick(item.node),
    };
    const act = acts[e.key];
    if (act && item) { e.preventDefault(); act(); }
  };
  return (
    <nav class="folders" aria-label="Folders">
      <div role="tree" aria-label="Folders" ref={tree} onKeyDown={keys}>
        {items.map((item, i) => (
          <TreeItem key={item.node.path} item={item} chosen={item.node.path === chosen}
            focused={i === at} pick={() => pick(item.node)} flip={() => flip(item, !item.open)}
            onFocus={() => setFocus(item.node.path)} />
        ))}
      </div>
      <p class="muted small">Runs in each folder and below it, with the other filters.</p>
    </nav>
  );
}

function TreeItem(p: { item: Item; chosen: boolean; focused: boolean; pick: () => void;
  flip: () => void; onFocus: () => void }) {
  const { node, depth, open } = p.item;
  const parent = node.children.length > 0;
  return (
    <div role="treeitem" class={p.chosen ? "folder chosen" : "folder"} data-path={node.path}
      aria-level={depth + 1} aria-expanded={parent ? open : undefined} aria-selected={p.chosen}
      tabIndex={p.focused ? 0 : -1} style={{ paddingLeft: `${depth * 12 + 2}px` }} onClick={p.pick}
      onFocus={p.onFocus}>
      <span class={parent ? "twisty" : "twisty none"} aria-hidden="true"
        onClick={(e) => { if (parent) { e.stopPropagation(); p.flip(); } }}>
        {parent ? (open ? "▾" : "▸") : ""}</span>
      <span class="fname">{node.name}</span> <span class="fcount muted">{node.count.toLocaleString()}</span>
    </div>
  );
}

/** The items a reader sees: each node, and its children when it is open. */
function visible(root: Node, isOpen: (n: Node, depth: number) => boolean): Item[] {
  const out: Item[] = [];
  const walk = (node: Node, depth: number, parent: string | null) => {
    const open = isOpen(node, depth);
    out.push({ node, depth, parent, open });
    if (open) node.children.forEach((c) => walk(c, depth + 1, node.path));
  };
  walk(root, 0, null);
  return out;
}
