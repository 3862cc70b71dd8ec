// The dashboard's routes live in the URL's hash (#/, #/runs/<id>, #/compare?ids=a,b), so
// the server serves one page at / and a reload or a shared link lands on the same view.
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "list"; params: URLSearchParams }
  | { page: "run"; id: string }
  | { page: "compare"; ids: string[] }
  | { page: "missing"; path: string };

export function parse(hash: string): Route {
  const [path, search = ""] = hash.replace(/^#/, "").split("?", 2);
  const params = new URLSearchParams(search);
  const parts = path.split("/").filter(Boolean);
  if (parts.length === 0) return { page: "list", params };
  if (parts[0] === "runs" && parts.length === 2) return { page: "run", id: decodeURIComponent(parts[1]) };
  if (parts[0] === "compare") return { page: "compare", ids: (params.get("ids") || "").split(",").filter(Boolean) };
  return { page: "missing", path };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.hash));
  useEffect(() => {
    const on = () => setRoute(parse(location.hash));
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

export const runHref = (id: string) => `#/runs/${encodeURIComponent(id)}`;
export const compareHref = (ids: string[]) => `#/compare?ids=${ids.map(encodeURIComponent).join(",")}`;
export function go(href: string): void { location.hash = href.replace(/^#/, ""); }
