/**
 * `carbonmon --version` and `--help` load none of the services' dependencies (so they start about as fast
 * as node: bench/startup.ts measures it), `carbonmon agent` does not load the intensity service, client
 * commands load neither service, and the `--json` printer loads only with `--json`.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { CLI_ARGS } from "../helpers/cli.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const HEAVY =
  /node_modules\/(@grpc\/|grpc-health-check|pino|undici|better-sqlite3|koffi|@bufbuild\/protobuf)|\/server\/(agent|intensity)\/|\/proto\/gen\//;

/** The modules `carbonmon ARGS` loads, whatever its exit code (an unreachable agent fails some commands). */
async function loads(args: string[]): Promise<{ stdout: string; loaded: string[] }> {
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ["--import", "./test/helpers/log-loads.mjs", ...CLI_ARGS, ...args],
    { cwd: ROOT },
  ).catch((err: { stdout: string; stderr: string }) => err);
  return { stdout, loaded: [...stderr.matchAll(/^LOADED (\S+)$/gm)].map((m) => m[1]!) };
}

/** The services' code and what only they use (the database drivers, HTTP, NVML, logging, JWT). */
const SERVICES = /\/server\/(agent|intensity)\/|node_modules\/(undici|better-sqlite3|pg|koffi|pino|jose|prom-client)\//;
/** @bufbuild/protobuf's JSON printer and registry (the generated code needs only its wire format). */
const JSON_PRINTER = /node_modules\/@bufbuild\/protobuf\/dist\/esm\/(to-json|registry)\.js$/;

test("--version, --help and agent --help load no gRPC, logging, HTTP, SQLite or service code", async (t) => {
  for (const args of [["--version"], ["--help"], ["agent", "--help"]]) {
    const { stdout, loaded } = await loads(args);
    t.true(stdout.length > 0, `${args.join(" ")} printed`);
    t.true(
      loaded.some((u) => /\/bin\/carbonmon\.[jt]s$/.test(u)),
      "the hook saw the CLI load",
    );
    t.deepEqual(
      loaded.filter((u) => HEAVY.test(u)),
      [],
      `carbonmon ${args.join(" ")}`,
    );
  }
});

test("a client command loads its own code, not the services'", async (t) => {
  const { loaded } = await loads(["host", "--help"]);
  t.true(loaded.some((u) => /\/bin\/commands\/inspect\.[jt]s$/.test(u)));
  t.deepEqual(
    loaded.filter((u) => /\/server\/(agent|intensity)\/|node_modules\/(undici|better-sqlite3|koffi|pino)/.test(u)),
    [],
  );
});

test("run --agent (a job's prolog on every node) and printing commands load neither service nor the --json printer", async (t) => {
  const unreachable = ["--agent", "127.0.0.1:1"];
  const run = await loads(["run", ...unreachable, "--", process.execPath, "-e", "0"]);
  t.true(
    run.loaded.some((u) => /\/bin\/commands\/run\.[jt]s$/.test(u)),
    "the hook saw the command load",
  );
  t.deepEqual(
    run.loaded.filter((u) => SERVICES.test(u) || JSON_PRINTER.test(u)),
    [],
    "carbonmon run --agent",
  );
  for (const args of [
    ["host", ...unreachable],
    ["window", "get", "k", ...unreachable],
  ]) {
    const { loaded } = await loads(args);
    t.true(
      loaded.some((u) => u.includes("@grpc/grpc-js")),
      `${args.join(" ")} loaded its client`,
    );
    t.deepEqual(
      loaded.filter((u) => SERVICES.test(u) || JSON_PRINTER.test(u)),
      [],
      `carbonmon ${args.join(" ")}`,
    );
  }
});
