// Stands in for web/src/run/RunPage.tsx (the run page, built separately) until that file
// exists; build.mjs resolves the import here only while it is missing.
export function RunPage(props: { id: string }) {
  return <main class="page"><h1>Run {props.id}</h1><p>The run page is not built yet.</p></main>;
}
