// The runs list's filters: kept in the URL's hash (#/?status=running&kind=command…), so a
// reload or a shared link shows the same list, and turned into the API's RunFilter.
import { KINDS, STATUSES, type Kind, type RunFilter, type Status } from "../api";

export type Since = "" | "1h" | "24h" | "7d" | "30d";
export const SINCE: Record<Exclude<Since, "">, number> = { "1h": 3600, "24h": 86400,
  "7d": 7 * 86400, "30d": 30 * 86400 };

export interface ListFilter {
  status: Status[]; kind: Kind | ""; tag: string; folder: string; q: string; since: Since;
  order: "newest" | "oldest";
}

export function fromParams(p: URLSearchParams): ListFilter {
  const since = p.get("since") || "";
  const kind = p.get("kind") || "";
  return {
    status: p.getAll("status").filter((s): s is Status => (STATUSES as string[]).includes(s)),
    kind: (KINDS as string[]).includes(kind) ? kind as Kind : "",
    tag: p.get("tag") || "", folder: p.get("folder") || "", q: p.get("q") || "",
    since: since in SINCE ? since as Since : "",
    order: p.get("order") === "oldest" ? "oldest" : "newest",
  };
}

export function toParams(f: ListFilter): string {
  const p = new URLSearchParams();
  f.status.forEach((s) => p.append("status", s));
  if (f.kind) p.set("kind", f.kind);
  if (f.tag) p.set("tag", f.tag);
  if (f.folder) p.set("folder", f.folder);
  if (f.q) p.set("q", f.q);
  if (f.since) p.set("since", f.since);
  if (f.order !== "newest") p.set("order", f.order);
  return p.toString();
}

/** Tags typed as `a, b` (every one must be on the run). */
export const tagsOf = (text: string) => text.split(",").map((t) => t.trim()).filter(Boolean);

export function toRunFilter(f: ListFilter, now = Date.now() / 1000): RunFilter {
  return {
    status: f.status.length ? f.status : undefined, kind: f.kind || undefined,
    tag: tagsOf(f.tag), folder: f.folder || undefined, name: f.q || undefined,
    created_since: f.since ? Math.floor(now - SINCE[f.since]) : undefined,
  };
}

/** The filter's identity: a change of it starts the list over. */
export const filterKey = (f: ListFilter) => toParams(f);
