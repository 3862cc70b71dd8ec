// The dashboard's entry: the header (title, theme switch) and the hash router over the runs
// list (#/), a run's page (#/runs/<id>, web/src/run/) and the comparison (#/compare?ids=…).
import { render } from "preact";
import "./theme.css";
import { RunList } from "./list/RunList";
import { Compare } from "./compare/Compare";
import { RunPage } from "./run/RunPage";
import { useRoute } from "./shell/route";
import { useTheme } from "./shell/theme";

function App() {
  const route = useRoute();
  const [theme, toggle] = useTheme();
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">runyard</a>
        <nav><a href="#/">Runs</a></nav>
        <button type="button" class="theme" onClick={toggle} aria-label="Switch theme"
          title="Switch between dark and light">{theme === "dark" ? "☀ Light" : "☾ Dark"}</button>
      </header>
      {route.page === "list" && <RunList key={route.params.toString()} params={route.params} />}
      {route.page === "run" && <RunPage key={route.id} id={route.id} />}
      {route.page === "compare" && <Compare ids={route.ids} />}
      {route.page === "missing" &&
        <main class="page"><h1>Not found</h1><p>No page at {route.path}. <a href="#/">Runs</a></p></main>}
    </>
  );
}

render(<App />, document.getElementById("app")!);
