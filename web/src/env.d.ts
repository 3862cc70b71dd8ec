// Lets TypeScript accept the CSS imports esbuild bundles.
declare module "*.css";
