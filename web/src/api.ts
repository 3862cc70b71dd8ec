// The typed client of the runyard REST API (/api/v1) the whole dashboard talks through.
// The browser carries the token as the `runyard_token` cookie that /login set (HttpOnly, so no
// script reads it); every call here is same-origin, so the cookie goes along by itself.
// Errors come back as ApiError with the server's one-line `detail` and its `type`.
//
// Agreement with the run page (web/src/run/, W2): run actions (rename, tags, cancel, delete)
// go through renameRun / tagRun / cancelRun / deleteRun here. The runs list (web/src/list/)
// also has rename and delete buttons on each row; the run page may have its own — both call
// these functions, and both announce a change with `notifyRunChanged` so other views refresh.

export const API = "/api/v1";

export type Status = "created" | "pending" | "running" | "succeeded" | "failed" |
  "canceling" | "canceled" | "lost";
export type Kind = "tracked" | "workflow" | "command" | "recorded" | "version";
export const STATUSES: Status[] = ["created", "pending", "running", "succeeded", "failed",
  "canceling", "canceled", "lost"];
export const KINDS: Kind[] = ["tracked", "workflow", "command", "recorded", "version"];
export const TERMINAL = new Set<Status>(["succeeded", "failed", "canceled"]);

export interface Run {
  id: string; name: string; folder: string; kind: Kind; status: Status;
  status_reason: string | null; description: string | null; tags: string[];
  metadata: Record<string, unknown>; parameters: Record<string, unknown>;
  created: number; started: number | null; ended: number | null; heartbeat?: number | null;
  owner: Record<string, unknown> | null; code: Record<string, unknown> | null;
  environment: Record<string, unknown> | null; config: Record<string, unknown> | null;
  origin: string | null; resources?: Record<string, unknown> | null;
  internals: Record<string, unknown> | null;
}

export interface RunFilter {
  status?: Status[]; tag?: string[]; folder?: string; name?: string; kind?: Kind;
  created_since?: number; created_until?: number;
}

export interface RunPage { runs: Run[]; next_cursor: string | null; next_offset?: number | null }
export interface MetricSummary {
  name: string; count: number; last: number; last_step: number | null;
  minimum: number; maximum: number;
}
export interface Downsampled {
  name: string; x: "step" | "time"; buckets: number; count: number;
  points: { x: number[]; y: (number | string)[] };
}
export interface MetricColumns {
  names: string[]; values: (number | string)[]; steps: (number | null)[]; times: number[];
}
export interface RunEvent { time: number; message: string; level: string }
export interface LogLine { time: number; text: string; stream: string; step: string | null }
export interface Artifact { name: string; hash: string; size: number; stage: string;[k: string]: unknown }
export interface Step { name: string;[k: string]: unknown }

export class ApiError extends Error {
  constructor(public status: number, public detail: string, public type: string) {
    super(detail);
  }
}

type Query = Record<string, string | number | boolean | string[] | undefined | null>;

export function query(params: Query): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((one) => q.append(k, one));
    else q.append(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

export async function call<T>(method: string, path: string, body?: unknown,
  signal?: AbortSignal): Promise<T> {
  const init: RequestInit = { method, credentials: "same-origin", signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const answer = await fetch(API + path, init);
  if (!answer.ok) {
    let detail = answer.statusText, type = "Error";
    try { ({ detail, type } = await answer.json()); } catch { /* not JSON */ }
    throw new ApiError(answer.status, detail, type);
  }
  if (answer.status === 204) return undefined as T;
  return answer.json() as Promise<T>;
}

const get = <T>(path: string, signal?: AbortSignal) => call<T>("GET", path, undefined, signal);
const ref = encodeURIComponent;

// --- runs ---
export function filterQuery(f: RunFilter): Query {
  return { status: f.status, tag: f.tag, folder: f.folder, name: f.name, kind: f.kind,
    created_since: f.created_since, created_until: f.created_until };
}
/** A page of runs. `sort` is `created` (the default: paged by `cursor`) or another order
 * (`name`, `status`, `kind`, `started`, `ended`, `duration`, `param:<key>`: paged by
 * `offset`); `order` is its direction (`newest` = descending). */
export const listRuns = (f: RunFilter, opts: { cursor?: string | null; offset?: number;
  limit?: number; order?: "newest" | "oldest"; sort?: string } = {}, signal?: AbortSignal) =>
  get<RunPage>(`/runs${query({ ...filterQuery(f), cursor: opts.cursor, offset: opts.offset || undefined,
    limit: opts.limit, order: opts.order,
    sort: opts.sort && opts.sort !== "created" ? opts.sort : undefined })}`, signal);
/** How many matching runs lie directly in each folder (not below it). */
export const folderCounts = (f: RunFilter, signal?: AbortSignal) =>
  get<{ folders: Record<string, number> }>(`/folders${query(filterQuery(f))}`, signal)
    .then((a) => a.folders);
export const countRuns = (f: RunFilter, signal?: AbortSignal) =>
  get<{ count: number }>(`/runs/count${query(filterQuery(f))}`, signal).then((a) => a.count);
export const getRun = (id: string) => get<Run>(`/runs/${ref(id)}`);
export const versionRuns = (id: string) =>
  get<{ version: Run; runs: Run[] }>(`/versions/${ref(id)}/runs`);
export const renameRun = (id: string, name: string) =>
  call<Run>("POST", `/runs/${ref(id)}/rename`, { name }).then(notifyRunChanged);
export const tagRun = (id: string, add: string[], remove: string[] = []) =>
  call<Run>("POST", `/runs/${ref(id)}/tags`, { add, remove }).then(notifyRunChanged);
export const cancelRun = (id: string) =>
  call<Run>("POST", `/runs/${ref(id)}/cancel`).then(notifyRunChanged);
export const deleteRun = (id: string) =>
  call<void>("DELETE", `/runs/${ref(id)}`).then(() => notifyRunRemoved(id));
export const getSteps = (id: string) =>
  get<{ steps: Step[] }>(`/runs/${ref(id)}/steps`).then((a) => a.steps);

// --- streams ---
export const metricSummary = (id: string, signal?: AbortSignal) =>
  get<{ metrics: MetricSummary[] }>(`/runs/${ref(id)}/metrics/summary`, signal)
    .then((a) => a.metrics);
export const downsample = (id: string, name: string, opts: { buckets?: number;
  x?: "step" | "time"; min?: number; max?: number } = {}, signal?: AbortSignal) =>
  get<Downsampled>(`/runs/${ref(id)}/metrics/downsample${query({ name, ...opts })}`, signal);
export const getEvents = (id: string, opts: { since?: number; tail?: number } = {}) =>
  get<{ events: RunEvent[] }>(`/runs/${ref(id)}/events${query(opts)}`).then((a) => a.events);
export const getLogs = (id: string, opts: { step?: string; since?: number; tail?: number } = {}) =>
  get<{ lines: LogLine[] }>(`/runs/${ref(id)}/logs${query(opts)}`).then((a) => a.lines);
export const getArtifacts = (id: string) =>
  get<{ artifacts: Artifact[] }>(`/runs/${ref(id)}/artifacts`).then((a) => a.artifacts);
export const artifactUrl = (id: string, name: string, stage = "put") =>
  `${API}/runs/${ref(id)}/artifacts/content${query({ name, stage })}`;

/** A wire number: NaN and the infinities travel as strings. */
export function num(v: number | string | null): number | null {
  if (v === null) return null;
  if (typeof v === "number") return v;
  return v === "NaN" ? NaN : v === "Infinity" ? Infinity : v === "-Infinity" ? -Infinity : Number(v);
}

// --- server-sent events ---
export type Handlers = Record<string, (data: any) => void>;

/** Follows an SSE stream of the API; returns a function that closes it. EventSource
 * reconnects by itself (resuming with Last-Event-ID); `onState` hears whether it is open. */
export function stream(path: string, handlers: Handlers,
  onState?: (open: boolean) => void): () => void {
  const source = new EventSource(API + path, { withCredentials: true });
  for (const [event, handle] of Object.entries(handlers)) {
    source.addEventListener(event, (e) => handle(JSON.parse((e as MessageEvent).data)));
  }
  source.onopen = () => onState?.(true);
  source.onerror = () => onState?.(false);
  return () => source.close();
}

/** New runs and status changes of the filtered list (`run`), and runs leaving it (`removed`). */
export const watchRuns = (f: RunFilter, on: { run: (r: Run) => void;
  removed: (a: { id: string }) => void }, onState?: (open: boolean) => void, limit?: number) =>
  stream(`/watch/runs${query({ ...filterQuery(f), limit })}`, on, onState);

/** One run: `status` (run), `metrics` (columns), `logs` ({lines}), `events`, `end`. */
export const watchRun = (id: string, what: { metrics?: boolean; logs?: boolean;
  events?: boolean }, on: Handlers, onState?: (open: boolean) => void) =>
  stream(`/runs/${ref(id)}/watch${query({ metrics: what.metrics ? 1 : undefined,
    logs: what.logs ? 1 : undefined, events: what.events ? 1 : undefined })}`, on, onState);

// --- changes made here, told to every view ---
export function notifyRunChanged(run: Run): Run {
  window.dispatchEvent(new CustomEvent("runyard:run", { detail: run }));
  return run;
}
export function notifyRunRemoved(id: string): void {
  window.dispatchEvent(new CustomEvent("runyard:removed", { detail: { id } }));
}
