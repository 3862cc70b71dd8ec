// One clock for every running run's duration on screen: a single one-second timer, started
// when the first ticking cell appears and stopped when the last one goes, so a table of
// finished runs runs no timer at all and a ticking cell re-renders alone, not its table.
import { useEffect, useState } from "preact/hooks";

const listeners = new Set<() => void>();
let timer = 0;

/** Re-render the calling component every second while ``on``; the current time in seconds. */
export function useTick(on: boolean): number {
  const [now, setNow] = useState(() => Date.now() / 1000);
  useEffect(() => {
    if (!on) return undefined;
    const beat = () => setNow(Date.now() / 1000);
    listeners.add(beat);
    if (!timer) timer = window.setInterval(() => listeners.forEach((l) => l()), 1000);
    return () => {
      listeners.delete(beat);
      if (!listeners.size) { window.clearInterval(timer); timer = 0; }
    };
  }, [on]);
  return on ? now : Date.now() / 1000;
}

/** Whether any ticking cell is on screen (the timer runs): for tests and the curious. */
export const ticking = () => timer !== 0;
