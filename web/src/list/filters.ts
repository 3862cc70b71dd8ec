// The runs list's filters and its order: kept in the URL's hash
// (#/?status=running&kind=command&sort=name&order=oldest…), so a reload or a shared link shows
// the same list, and turned into the API's RunFilter (the order goes as `sort` and `order`).
import { KINDS, STATUSES, type Kind, type RunFilter, type Status } from "../api";

export type Since = "" | "1h" | "24h" | "7d" | "30d";
export const SINCE: Record<Exclude<Since, "">, number> = { "1h": 3600, "24h": 86400,
  "7d": 7 * 86400, "30d": 30 * 86400 };

export interface ListFilter {
  status: Status[]; kind: Kind | ""; tag: string; folder: string; q: string; since: Since;
  sort: string; order: "newest" | "oldest";
}

/** The orders the server sorts by (`param:<key>`: a top-level parameter, 1–250 characters). */
export const SORTS = ["created", "name", "status", "kind", "started", "ended", "duration"];
export const sortable = (s: string) =>
  SORTS.includes(s) || (s.startsWith("param:") && s.length > 6 && s.length <= 256);

export function fromParams(p: URLSearchParams): ListFilter {
  const since = p.get("since") || "";
  const kind = p.get("kind") || "";
  return {
    status: p.getAll("status").filter((s): s is Status => (STATUSES as string[]).includes(s)),
    kind: (KINDS as string[]).includes(kind) ? kind as Kind : "",
    tag: p.get("tag") || "", folder: p.get("folder") || "", q: p.get("q") || "",
    since: since in SINCE ? since as Since : "",
    sort: sortable(p.get("sort") || "") ? p.get("sort")! : "created",
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
  if (f.sort !== "created") p.set("sort", f.sort);
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

/** The filter's identity (its order included): a change of it starts the list over. */
export const filterKey = (f: ListFilter) => toParams(f);
