/**
 * A run's metrics as charts: its own metrics first, then its system resources (the `system.*`
 * metrics the tracker samples) in a section of their own. The list of names comes from the
 * metrics summary, asked again while the run runs so a metric logged later gets its chart.
 */
import { useEffect, useState } from 'preact/hooks';
import { TERMINAL, metricSummary } from '../api';
import type { MetricSummary, Run } from '../api';
import { MetricChart } from '../charts/MetricChart';
import { Section } from './Fields';

const FIRST = 12; // charts drawn before "show all"

export function useMetricNames(run: Run): MetricSummary[] | null {
  const [names, setNames] = useState<MetricSummary[] | null>(null);
  const running = !TERMINAL.has(run.status);
  useEffect(() => {
    let live = true;
    const load = () => metricSummary(run.id).then((m) => { if (live) setNames(m); }).catch(() => {});
    void load();
    const timer = running ? window.setInterval(load, 5000) : 0;
    return () => { live = false; clearInterval(timer); };
  }, [run.id, running]);
  return names;
}

function Charts(props: { run: Run; names: MetricSummary[] }) {
  const [all, setAll] = useState(false);
  const shown = all ? props.names : props.names.slice(0, FIRST);
  return (
    <div class="charts">
      {shown.map((m) => <MetricChart key={m.name} runs={[props.run.id]} name={m.name} />)}
      {props.names.length > FIRST && !all &&
        <button type="button" onClick={() => setAll(true)}>show all {props.names.length} charts</button>}
    </div>
  );
}

export function Metrics(props: { run: Run }) {
  const names = useMetricNames(props.run);
  if (names === null) return <Section title="Metrics" id="metrics"><p class="muted">loading…</p></Section>;
  const own = names.filter((m) => !m.name.startsWith('system.'));
  const system = names.filter((m) => m.name.startsWith('system.'));
  return (
    <>
      <Section title="Metrics" id="metrics">
        {own.length ? <Charts run={props.run} names={own} /> : <p class="muted">no metrics</p>}
      </Section>
      {(system.length > 0 || props.run.resources) &&
        <Section title="System resources" id="system">
          {system.length ? <Charts run={props.run} names={system} /> : <p class="muted">no samples</p>}
        </Section>}
    </>
  );
}
