/**
 * `carbonmon --version` and `--help` load none of the services' dependencies (so they start about as fast
 * as node: bench/startup.ts measures it), and `carbonmon agent` does not load the intensity service.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { CLI_ARGS } from "../helpers/cli.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const HEAVY =
  /node_modules\/(@grpc\/|grpc-health-check|pino|undici|better-sqlite3|koffi|@bufbuild\/protobuf)|\/server\/(agent|intensity)\/|\/proto\/gen\//;

async function loads(args: string[]): Promise<{ stdout: string; loaded: string[] }> {
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ["--import", "./test/helpers/log-loads.mjs", ...CLI_ARGS, ...args],
    { cwd: ROOT },
  );
  return { stdout, loaded: [...stderr.matchAll(/^LOADED (\S+)$/gm)].map((m) => m[1]!) };
}

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
