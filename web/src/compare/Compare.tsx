// Compare runs: (filled in below) their metrics overlaid and their fields side by side.
export function Compare(props: { ids: string[] }) {
  return <main class="page"><h1>Compare</h1><p>{props.ids.join(", ")}</p></main>;
}
