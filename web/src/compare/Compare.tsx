// Compare runs (#/compare?ids=a,b,…): their metrics overlaid, one chart per metric (the
// chart component of web/src/charts/), and their fields, parameters and metadata side by
// side — rows whose values differ are highlighted (and marked ≠ for those who cannot see it).
import { useEffect, useState } from "preact/hooks";
import { getRun, metricSummary, type Run } from "../api";
import { MetricChart } from "../charts/MetricChart";
import { duration, show, when } from "../shell/format";
import { runHref } from "../shell/route";

const FIRST_CHARTS = 12;

interface Loaded { runs: Run[]; metrics: string[] }

export function Compare(props: { ids: string[] }) {
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [all, setAll] = useState(false);
  useEffect(() => {
    setLoaded(null); setError(null);
    Promise.all([Promise.all(props.ids.map(getRun)),
      Promise.all(props.ids.map((id) => metricSummary(id).catch(() => [])))])
      .then(([runs, summaries]) => {
        const names = new Set<string>();
        summaries.forEach((s) => s.forEach((m) => names.add(m.name)));
        setLoaded({ runs, metrics: [...names].sort() });
      }).catch((e) => setError(e.message));
  }, [props.ids.join(",")]);
  if (props.ids.length < 2) return <main class="page"><h1>Compare</h1><p>Choose two runs or more in the <a href="#/">list</a>.</p></main>;
  if (error) return <main class="page"><h1>Compare</h1><p class="error" role="alert">{error}</p></main>;
  if (!loaded) return <main class="page" data-state="loading"><h1>Compare</h1><p class="muted">Loading…</p></main>;
  const { runs, metrics } = loaded;
  const labels = Object.fromEntries(runs.map((r) => [r.id, r.name]));
  const shown = all ? metrics : metrics.slice(0, FIRST_CHARTS);
  return (
    <main class="page compare" data-state="ready">
      <h1>Compare {runs.length} runs</h1>
      <Table title="Fields" runs={runs} rows={fieldRows(runs)} />
      <Table title="Parameters" runs={runs} rows={keyRows(runs, (r) => r.parameters)} />
      <Table title="Metadata" runs={runs} rows={keyRows(runs, (r) => r.metadata)} />
      <h2>Metrics</h2>
      {metrics.length === 0 && <p class="muted">These runs have no metrics.</p>}
      <div class="charts">
        {shown.map((name) => (
          <section key={name} aria-label={`Metric ${name}`}>
            <MetricChart runs={runs.map((r) => r.id)} name={name} labels={labels} />
          </section>
        ))}
      </div>
      {!all && metrics.length > FIRST_CHARTS &&
        <button type="button" onClick={() => setAll(true)}>Show all {metrics.length} metrics</button>}
    </main>
  );
}

type Row = [string, string[]];

function fieldRows(runs: Run[]): Row[] {
  const fields: [string, (r: Run) => string][] = [
    ["kind", (r) => r.kind], ["status", (r) => r.status], ["folder", (r) => r.folder],
    ["tags", (r) => r.tags.join(", ")], ["start", (r) => when(r.started ?? r.created)],
    ["duration", (r) => duration(r)], ["description", (r) => r.description ?? ""],
    ["origin", (r) => r.origin ?? ""], ["code", (r) => show(r.code?.commit ?? "")],
  ];
  return fields.map(([name, get]) => [name, runs.map(get)]);
}

function keyRows(runs: Run[], of: (r: Run) => Record<string, unknown> | null): Row[] {
  const keys = new Set<string>();
  runs.forEach((r) => Object.keys(of(r) || {}).forEach((k) => keys.add(k)));
  return [...keys].sort().map((k) => [k, runs.map((r) => {
    const dict = of(r) || {};
    return k in dict ? show(dict[k]) : "–";
  })]);
}

function Table(props: { title: string; runs: Run[]; rows: Row[] }) {
  const differing = props.rows.filter(([, v]) => new Set(v).size > 1).length;
  return (
    <section aria-label={props.title}>
      <h2>{props.title} <span class="muted small">{props.rows.length ? `${differing} of ${props.rows.length} differ` : "none"}</span></h2>
      {props.rows.length > 0 && (
        <table class="compare">
          <thead><tr><th scope="col"></th>{props.runs.map((r) => <th scope="col" key={r.id}><a href={runHref(r.id)}>{r.name}</a></th>)}</tr></thead>
          <tbody>
            {props.rows.map(([name, values]) => (
              <tr key={name} class={new Set(values).size > 1 ? "differs" : undefined}>
                <th scope="row">{name}</th>
                {values.map((v, i) => <td key={i}>{v}</td>)}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
