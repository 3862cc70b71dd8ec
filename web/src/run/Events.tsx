/**
 * A run's events (timestamped messages), growing live while the run runs; they come on the
 * run's shared live stream (charts/live.ts), which sends every event from the first.
 */
import { useEffect, useState } from 'preact/hooks';
import type { RunEvent } from '../api';
import { follow } from '../charts/live';
import { Section } from './Fields';

export function Events(props: { id: string }) {
  const [events, setEvents] = useState<RunEvent[]>([]);
  useEffect(() => {
    setEvents([]);
    return follow(props.id, 'logs', { events: (more) => setEvents((old) => old.concat(more)) });
  }, [props.id]);
  return (
    <Section title={`Events (${events.length})`} id="events" open={events.length > 0}>
      {events.length === 0 ? <p class="muted">no events</p> : (
        <table class="grid events">
          <thead><tr><th>time</th><th>level</th><th>message</th></tr></thead>
          <tbody>{events.slice(-1000).map((e, i) => (
            <tr key={i} class={`level-${e.level}`}><td>{new Date(e.time * 1000).toLocaleTimeString()}</td>
              <td>{e.level}</td><td>{e.message}</td></tr>))}</tbody>
        </table>)}
    </Section>
  );
}
