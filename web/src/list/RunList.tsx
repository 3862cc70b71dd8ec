// The runs list (filled in below).
export function RunList(_props: { params: URLSearchParams }) {
  return <main class="page"><h1>Runs</h1></main>;
}
