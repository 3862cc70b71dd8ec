/**
 * One live connection per run, shared by everything on the page that follows it.
 *
 * Why: a browser opens at most six HTTP/1.1 connections to one host, so a run page with a
 * dozen charts, its logs and its status cannot give each its own stream. `follow(id, 'metrics',
 * handler)` opens GET /api/v1/runs/{id}/watch?metrics=1 once for all the run's charts (fetch,
 * not EventSource, so the first request can carry `Last-Event-ID: metrics=N`: the charts
 * already drew the first N rows through the downsampling route and must not be sent a million
 * of them again); `follow(id, 'logs', handler)` opens …/watch?logs=1&events=1 from the start
 * for the log view, the events and the page's status.
 * Log lines and events are kept and replayed to late subscribers; the stream is resumed from
 * its last id when it drops, and closed when the last subscriber leaves.
 */

export type Columns = { names: string[]; values: (number | string)[]; steps: (number | null)[]; times: number[] };
export type LogLine = { time: number; text: string; stream: string; step: string | null };
export type RunEvent = { time: number; message: string; level: string };

export type LiveHandler = {
  status?: (run: any) => void;
  metrics?: (cols: Columns) => void;
  logs?: (lines: LogLine[]) => void;
  events?: (events: RunEvent[]) => void;
  end?: (status: string) => void;
};

type Hub = {
  handlers: Set<LiveHandler>;
  logs: LogLine[];
  events: RunEvent[];
  run: any;
  ended: string | null;
  lastId: string;
  abort: AbortController;
};

export type Streams = 'metrics' | 'logs';

const hubs = new Map<string, Hub>();
const LINGER_MS = 2000;

/** Follow run `id`; the returned function stops following. */
export function follow(id: string, streams: Streams, handler: LiveHandler): () => void {
  const key = `${streams}|${id}`;
  let hub = hubs.get(key);
  if (!hub) {
    hub = { handlers: new Set(), logs: [], events: [], run: null, ended: null,
            lastId: '', abort: new AbortController() };
    hubs.set(key, hub);
    void connect(id, streams, hub);
  } else {
    replay(hub, handler);
  }
  hub.handlers.add(handler);
  const h = hub;
  return () => {
    h.handlers.delete(handler);
    // kept a moment: a chart that zooms leaves and comes back at once (same stream)
    if (h.handlers.size === 0) setTimeout(() => {
      if (h.handlers.size > 0 || hubs.get(key) !== h) return;
      h.abort.abort();
      hubs.delete(key);
    }, LINGER_MS);
  };
}

function replay(hub: Hub, handler: LiveHandler): void {
  if (hub.run) handler.status?.(hub.run);
  if (hub.logs.length) handler.logs?.(hub.logs.slice());
  if (hub.events.length) handler.events?.(hub.events.slice());
  if (hub.ended) handler.end?.(hub.ended);
}

async function connect(id: string, streams: Streams, hub: Hub): Promise<void> {
  hub.lastId = streams === 'metrics' ? `metrics=${await metricRows(id)}` : 'events=0,logs=0';
  const query = streams === 'metrics' ? 'metrics=1' : 'logs=1&events=1';
  while (!hub.abort.signal.aborted && hub.ended === null) {
    try {
      await readStream(id, query, hub);
    } catch (err) {
      if (hub.abort.signal.aborted) return;
    }
    if (hub.ended === null && !hub.abort.signal.aborted) await sleep(1000);
  }
}

async function readStream(id: string, query: string, hub: Hub): Promise<void> {
  const url = `/api/v1/runs/${encodeURIComponent(id)}/watch?${query}`;
  const answer = await fetch(url, { credentials: 'same-origin', signal: hub.abort.signal,
                                    headers: { 'Last-Event-ID': hub.lastId, Accept: 'text/event-stream' } });
  if (answer.status === 404) { dispatch(hub, 'end', { status: 'removed' }); return; }
  if (!answer.ok || !answer.body) throw new Error(`watch answered ${answer.status}`);
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    text += value;
    let cut: number;
    while ((cut = text.indexOf('\n\n')) >= 0) {
      parseEvent(hub, text.slice(0, cut));
      text = text.slice(cut + 2);
    }
  }
}

function parseEvent(hub: Hub, block: string): void {
  let event = 'message', data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
    else if (line.startsWith('id: ')) hub.lastId = line.slice(4);
  }
  if (data) dispatch(hub, event, JSON.parse(data));
}

function dispatch(hub: Hub, event: string, data: any): void {
  if (event === 'status') hub.run = data;
  else if (event === 'logs') hub.logs.push(...data.lines);
  else if (event === 'events') hub.events.push(...data.events);
  else if (event === 'end' || event === 'removed') hub.ended = data.status ?? 'removed';
  for (const h of hub.handlers) {
    if (event === 'status') h.status?.(data);
    else if (event === 'metrics') h.metrics?.(data);
    else if (event === 'logs') h.logs?.(data.lines);
    else if (event === 'events') h.events?.(data.events);
    else if (event === 'end' || event === 'removed') h.end?.(hub.ended as string);
  }
}

/** How many metric rows run `id` has now: where its live metrics start. */
async function metricRows(id: string): Promise<number> {
  try {
    const answer = await fetch(`/api/v1/runs/${encodeURIComponent(id)}/metrics/summary`,
                               { credentials: 'same-origin' });
    if (!answer.ok) return 0;
    const doc = await answer.json();
    return doc.metrics.reduce((n: number, m: { count: number }) => n + m.count, 0);
  } catch {
    return 0;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
