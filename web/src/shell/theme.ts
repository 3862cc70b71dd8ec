// Dark and light themes: the system's choice until the user picks one (kept in localStorage).
import { useState } from "preact/hooks";

export type Theme = "dark" | "light";
const KEY = "runyard.theme";

export function initialTheme(): Theme {
  const kept = localStorage.getItem(KEY);
  if (kept === "dark" || kept === "light") return kept;
  return matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark";
}

export function applyTheme(theme: Theme): void {
  document.documentElement.dataset.theme = theme;
}

export function useTheme(): [Theme, () => void] {
  const [theme, setTheme] = useState<Theme>(() => { const t = initialTheme(); applyTheme(t); return t; });
  const toggle = () => {
    const next: Theme = theme === "dark" ? "light" : "dark";
    localStorage.setItem(KEY, next);
    applyTheme(next);
    setTheme(next);
  };
  return [theme, toggle];
}
