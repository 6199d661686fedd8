import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker, type WorkerOptions } from "node:worker_threads";

/**
 * Where tsx's ESM API is, read from its package's exports: neither `import.meta.resolve` (absent
 * under vitest) nor `require.resolve` (which finds the CommonJS build, whose register() breaks)
 * gives the ESM file.
 */
function tsxEsmApi(): URL {
  const manifest = createRequire(import.meta.url).resolve("tsx/package.json");
  const { exports } = JSON.parse(readFileSync(manifest, "utf8")) as {
    exports: Record<string, { import: { default: string } }>;
  };
  return new URL(exports["./esm/api"]!.import.default, pathToFileURL(manifest));
}

/**
 * The module `name` beside `importMeta`'s file, as .ts under tsx and vitest, as .js once compiled.
 */
export function siblingModule(importMeta: ImportMeta, name: string): URL {
  return new URL(`./${name}${importMeta.url.endsWith(".ts") ? ".ts" : ".js"}`, importMeta.url);
}

/**
 * Starts a worker thread running `module`. A thread starts as plain Node, which cannot load
 * TypeScript: under tsx and vitest the module is a .ts file, so the thread registers tsx's hooks
 * before it loads the module (`--import` in a thread's execArgv is not applied on Node 20).
 */
export function startThread(module: URL, options: Omit<WorkerOptions, "eval"> = {}): Worker {
  if (!module.pathname.endsWith(".ts")) return new Worker(module, options);
  const code =
    `import(${JSON.stringify(tsxEsmApi().href)})` +
    `.then((tsx) => tsx.register())` +
    `.then(() => import(${JSON.stringify(module.href)}))`;
  return new Worker(code, { ...options, eval: true });
}
