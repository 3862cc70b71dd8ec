// How times, durations and values read everywhere in the dashboard.
import type { Run } from "../api";

const pad = (n: number) => String(n).padStart(2, "0");

/** A timestamp (seconds since the epoch) as local `YYYY-MM-DD HH:MM:SS`. */
export function when(t: number | null | undefined): string {
  if (t === null || t === undefined) return "–";
  const d = new Date(t * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Seconds as `1h 02m`, `3m 04s`, `5.2s`. */
export function span(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  if (h) return `${h}h ${pad(m)}m`;
  return m ? `${m}m ${pad(s % 60)}s` : `${s}s`;
}

/** How long a run ran (or has run so far, if it still does). */
export function duration(run: Run, now = Date.now() / 1000): string {
  if (run.started === null) return "–";
  return span((run.ended ?? now) - run.started);
}

/** Any JSON value, short, for a table cell. */
export function show(v: unknown): string {
  if (v === undefined) return "";
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(6).replace(/\.?0+$/, "");
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}
