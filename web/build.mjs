// Builds the dashboard: one minified JavaScript bundle and one CSS file, named by content hash,
// plus index.html naming them, into the Python package (src/runyard/server/static/), which the
// server serves at / and the wheel ships. `node build.mjs` (npm run build); `--dev`: unminified.
import { build } from "esbuild";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "runyard", "server", "static");
const dev = process.argv.includes("--dev");

// The run page is the other half of the dashboard (web/src/run/); until it lands, a stub
// stands in so the shell builds on its own.
const runPage = join(here, "src", "run", "RunPage.tsx");
const stubRunPage = {
  name: "stub-run-page",
  setup(b) {
    b.onResolve({ filter: /\/run\/RunPage$/ }, () =>
      existsSync(runPage) ? undefined : { path: join(here, "src", "shell", "RunPageStub.tsx") });
  },
};

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });
const result = await build({
  entryPoints: [join(here, "src", "main.tsx")],
  bundle: true, minify: !dev, sourcemap: false, metafile: true, format: "esm",
  target: ["es2020"], jsx: "automatic", jsxImportSource: "preact",
  outdir: join(out, "assets"), entryNames: "[name]-[hash]", assetNames: "[name]-[hash]",
  legalComments: "none", plugins: [stubRunPage], logLevel: "warning",
});
const files = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = files.find((f) => f.endsWith(".js"));
const css = files.find((f) => f.endsWith(".css"));
const page = readFileSync(join(here, "index.html"), "utf8")
  .replace("%CSS%", css ? `<link rel="stylesheet" href="/assets/${css}">` : "")
  .replace("%JS%", `<script type="module" src="/assets/${js}"></script>`);
writeFileSync(join(out, "index.html"), page);
console.log(`built ${files.join(", ")} into ${relative(process.cwd(), out)}`);
