/**
 * Worker threads on a module that lies beside the caller: its compiled .js in production; under tsx (tests,
 * benchmarks run the TypeScript sources) its .ts, with tsx registered inside the worker first, because
 * Node 20 cannot start a worker from a .ts file even when the parent runs under tsx.
 */
import { Worker, type WorkerOptions } from "node:worker_threads";

/** Starts a worker on `./<name>.js` (or `.ts`) next to the module whose import.meta.url is `callerUrl`. */
export function startWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  const fromSource = callerUrl.endsWith(".ts");
  const url = new URL(`./${name}.${fromSource ? "ts" : "js"}`, callerUrl);
  if (!fromSource) return new Worker(url, options);
  const api = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  const bootstrap = `import(${api}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
