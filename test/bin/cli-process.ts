/** Runs `carbonmon …` (its TypeScript sources) as a real process and collects what it printed. */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { fileURLToPath } from "node:url";
import { CLI_ARGS } from "../helpers/cli.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment every test's `carbonmon` gets over the process's own: quiet logs, no powercap. */
export const CLI_TEST_ENV = { CARBONMON_LOG_LEVEL: "silent", CARBONMON_POWERCAP_ROOT: "/nonexistent/powercap" } as const;

export function start(
  args: string[],
  env: Record<string, string> = {},
): ChildProcessWithoutNullStreams & { out: () => Finished; done: Promise<Finished> } {
  const child = spawn(process.execPath, [...CLI_ARGS, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...CLI_TEST_ENV, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d));
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  const out = (): Finished => ({ code: child.exitCode, stdout, stderr });
  const done = new Promise<Finished>((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
  return Object.assign(child, { out, done });
}

export const carbonmon = (args: string[], env: Record<string, string> = {}): Promise<Finished> => start(args, env).done;

/** Resolves once `predicate` holds for what the process printed so far. */
export function until(child: ReturnType<typeof start>, predicate: (f: Finished) => boolean, timeoutMs = 20_000): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out: ${JSON.stringify(child.out())}`)), timeoutMs);
    const check = (): void => {
      if (!predicate(child.out())) return;
      clearTimeout(timer);
      resolve(child.out());
    };
    child.stdout.on("data", check);
    child.stderr.on("data", check);
    check();
  });
}
