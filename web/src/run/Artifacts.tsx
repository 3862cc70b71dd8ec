/**
 * A run's artifacts (its data catalog): download any (GET …/artifacts/content, which answers
 * with Content-Disposition: attachment), preview text, CSV as a table and images in place.
 * A preview reads at most PREVIEW bytes (a Range request), so a 10 GB artifact costs nothing.
 * Names with slashes are shown as a folder tree (a recorded run's outputs, a version's files).
 */
import { useEffect, useState } from 'preact/hooks';
import { artifactUrl, getArtifacts } from '../api';
import type { Artifact } from '../api';
import { Section } from './Fields';

const PREVIEW = 256 * 1024;
const IMAGE = /\.(png|jpe?g|gif|webp|svg|bmp)$/i;
const TABLE = /\.(csv|tsv)$/i;

export function size(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return `${n.toFixed(1)} ${units[i]}`;
}

export function useArtifacts(id: string): Artifact[] | null {
  const [list, setList] = useState<Artifact[] | null>(null);
  useEffect(() => { getArtifacts(id).then(setList).catch(() => setList([])); }, [id]);
  return list;
}

export function Artifacts(props: { id: string; title?: string; stage?: string; list?: Artifact[] | null }) {
  const own = useArtifacts(props.id);
  const all = props.list ?? own;
  const list = all?.filter((a) => !props.stage || a.stage === props.stage) ?? null;
  const [open, setOpen] = useState<Artifact | null>(null);
  const title = props.title ?? 'Artifacts';
  return (
    <Section title={`${title}${list ? ` (${list.length})` : ''}`} id={title.toLowerCase().replace(/\W+/g, '-')}>
      {list === null ? <p class="muted">loading…</p> : list.length === 0 ? <p class="muted">none</p> : (
        <ArtifactTree id={props.id} list={list} onPreview={setOpen} />)}
      {open && <Preview key={`${open.stage}:${open.name}`} id={props.id} artifact={open} onClose={() => setOpen(null)} />}
    </Section>
  );
}

type Node = { name: string; path: string; children: Map<string, Node>; artifact?: Artifact };

function tree(list: Artifact[]): Node {
  const root: Node = { name: '', path: '', children: new Map() };
  for (const a of list) {
    let at = root;
    const parts = a.name.split('/');
    parts.forEach((part, i) => {
      const key = i === parts.length - 1 ? `${part}\u0000${a.stage}` : part;
      let next = at.children.get(key);
      if (!next) { next = { name: part, path: parts.slice(0, i + 1).join('/'), children: new Map() }; at.children.set(key, next); }
      at = next;
    });
    at.artifact = a;
  }
  return root;
}

function ArtifactTree(props: { id: string; list: Artifact[]; onPreview: (a: Artifact) => void }) {
  const root = tree(props.list);
  return <ul class="artifact-tree" role="tree">{Array.from(root.children.values()).map((n) => <TreeNode key={n.path} node={n} {...props} />)}</ul>;
}

function TreeNode(props: { id: string; node: Node; onPreview: (a: Artifact) => void }) {
  const n = props.node;
  if (!n.artifact) {
    return (
      <li role="treeitem"><details open><summary>{n.name}/</summary>
        <ul role="group">{Array.from(n.children.values()).map((c) => <TreeNode key={c.path} node={c} id={props.id} onPreview={props.onPreview} />)}</ul>
      </details></li>);
  }
  const a = n.artifact;
  return (
    <li role="treeitem" class="artifact" data-name={a.name}>
      <span class="artifact-name">{n.name}</span>
      <span class="muted"> {size(a.size)} · {a.stage}{a.step ? ` · ${a.step}` : ''} · {a.hash.slice(0, 12)}</span>
      {' '}<a href={artifactUrl(props.id, a.name, a.stage)} download={n.name} aria-label={`download ${a.name}`}>download</a>
      {' '}<button type="button" onClick={() => props.onPreview(a)} aria-label={`preview ${a.name}`}>preview</button>
    </li>);
}

function Preview(props: { id: string; artifact: Artifact; onClose: () => void }) {
  const a = props.artifact;
  const url = artifactUrl(props.id, a.name, a.stage);
  const [text, setText] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const image = IMAGE.test(a.name);
  useEffect(() => {
    if (image) return;
    setText(null); setError(null);
    fetch(url, { credentials: 'same-origin', headers: { Range: `bytes=0-${PREVIEW - 1}` } })
      .then(async (answer) => {
        if (!answer.ok) throw new Error(`${answer.status} ${answer.statusText}`);
        const bytes = new Uint8Array(await answer.arrayBuffer());
        if (bytes.subarray(0, 8000).includes(0)) throw new Error('binary content: download it to look inside');
        setText(new TextDecoder().decode(bytes));
      }).catch((e) => setError(String(e.message ?? e)));
  }, [url]);
  return (
    <div class="preview" role="region" aria-label={`preview of ${a.name}`}>
      <div class="preview-head"><strong>{a.name}</strong>
        {a.size > PREVIEW && !image && <span class="muted"> (first {size(PREVIEW)})</span>}
        <button type="button" onClick={props.onClose}>close</button></div>
      {error && <p class="error">{error}</p>}
      {image && <img src={url} alt={a.name} class="preview-image" />}
      {text !== null && (TABLE.test(a.name) ? <CsvTable text={text} tab={/\.tsv$/i.test(a.name)} /> : <pre class="preview-text">{text}</pre>)}
    </div>);
}

/** RFC 4180 rows (quoted fields, doubled quotes, newlines inside quotes). */
export function parseCsv(text: string, sep = ','): string[][] {
  const rows: string[][] = [];
  let row: string[] = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === sep) { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

function CsvTable(props: { text: string; tab: boolean }) {
  const rows = parseCsv(props.text, props.tab ? '\t' : ',').slice(0, 501);
  const [head, ...body] = rows;
  if (!head) return <p class="muted">empty</p>;
  return (
    <div class="csv-wrap"><table class="grid csv">
      <thead><tr>{head.map((h, i) => <th key={i}>{h}</th>)}</tr></thead>
      <tbody>{body.map((r, i) => <tr key={i}>{r.map((c, j) => <td key={j}>{c}</td>)}</tr>)}</tbody>
    </table></div>);
}
