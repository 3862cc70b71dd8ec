/**
 * A run's log lines (or one step's): all of them from the run's shared live stream, then new
 * ones as they are written; follow keeps the view at the end, search and the stream filter
 * narrow what is shown (the last LIMIT matches are drawn, so a huge log stays responsive).
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { LogLine } from '../api';
import { follow } from '../charts/live';

const LIMIT = 5000;

export function Logs(props: { id: string; step?: string | null; label?: string }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [search, setSearch] = useState('');
  const [stream, setStream] = useState('');
  const [tail, setTail] = useState(true);
  const [ended, setEnded] = useState<string | null>(null);
  const box = useRef<HTMLPreElement>(null);
  useEffect(() => {
    setLines([]); setEnded(null);
    return follow(props.id, 'logs', {
      logs: (more) => setLines((old) => old.concat(props.step ? more.filter((l) => l.step === props.step) : more)),
      end: setEnded,
    });
  }, [props.id, props.step]);
  const streams = useMemo(() => Array.from(new Set(lines.map((l) => l.stream))).sort(), [lines]);
  const shown = useMemo(() => {
    const needle = search.toLowerCase();
    return lines.filter((l) => (!stream || l.stream === stream) && (!needle || l.text.toLowerCase().includes(needle)));
  }, [lines, search, stream]);
  useEffect(() => { if (tail && box.current) box.current.scrollTop = box.current.scrollHeight; }, [shown, tail]);
  const label = props.label ?? 'logs';
  return (
    <div class="logs" data-lines={lines.length} data-shown={shown.length}>
      <div class="log-controls">
        <input type="search" placeholder="search" value={search} aria-label={`search ${label}`}
               onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
        <select value={stream} aria-label={`stream of ${label}`}
                onChange={(e) => setStream((e.target as HTMLSelectElement).value)}>
          <option value="">all streams</option>
          {streams.map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
        <label><input type="checkbox" checked={tail} aria-label={`follow ${label}`}
                      onChange={(e) => setTail((e.target as HTMLInputElement).checked)} /> follow</label>
        <span class="muted">{shown.length} of {lines.length} lines{ended ? '' : ' · live'}</span>
      </div>
      <pre ref={box} class="log-view" tabIndex={0} aria-label={label}>
        {shown.slice(-LIMIT).map((l, i) => (
          <div key={i} class={`log-line stream-${l.stream}`}>
            <span class="log-time">{new Date(l.time * 1000).toLocaleTimeString()}</span>
            {l.step && !props.step && <span class="log-step">{l.step}</span>}
            <span class="log-text">{l.text}</span></div>))}
      </pre>
    </div>
  );
}
