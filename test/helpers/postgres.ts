/**
 * A throwaway PostgreSQL cluster for the e2e tier: Debian's initdb and pg_ctl (package postgresql, 15)
 * in a temporary directory, listening on 127.0.0.1 at a free port, trust authentication, fsync off.
 * PostgreSQL refuses to run as root: as root the binaries run as the `postgres` user (created by the
 * Debian package) through runuser, and the directory is handed to that user.
 */
import { execFile } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";

const BIN = process.env.CARBONMON_TEST_PG_BIN ?? "/usr/lib/postgresql/15/bin";
const run = promisify(execFile);
export const POSTGRES_AVAILABLE = existsSync(join(BIN, "initdb")) && existsSync(join(BIN, "pg_ctl"));

export interface TestPostgres {
  /** postgres://carbonmon@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  /** A new, empty database; its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

const asRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL binary as a user it accepts. */
function pgBin(name: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const file = join(BIN, name);
  return asRoot ? run("runuser", ["-u", "postgres", "--", file, ...args], { timeout: 60_000 }) : run(file, args, { timeout: 60_000 });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function startPostgres(): Promise<TestPostgres> {
  if (!POSTGRES_AVAILABLE) throw new Error(`PostgreSQL binaries not found in ${BIN} (Debian package postgresql)`);
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-pg-"));
  if (asRoot) {
    const id = async (flag: string) => Number((await run("id", [flag, "postgres"])).stdout.trim());
    chownSync(dir, await id("-u"), await id("-g"));
  }
  const data = join(dir, "data");
  const log = join(dir, "server.log");
  try {
    await pgBin("initdb", ["-D", data, "-U", "carbonmon", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
    // A port picked free can be taken before the server binds it: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300`;
      try {
        await pgBin("pg_ctl", ["-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start"]);
      } catch (err) {
        if (attempt < 3) continue;
        throw new Error(`pg_ctl start failed: ${(err as Error).message}\n${existsSync(log) ? readFileSync(log, "utf8") : ""}`);
      }
      const url = `postgres://carbonmon@127.0.0.1:${port}/postgres`;
      return {
        url,
        port,
        createDatabase: async (name) => {
          const client = new pg.Client({ connectionString: url });
          await client.connect();
          try {
            await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
          } finally {
            await client.end();
          }
          return `postgres://carbonmon@127.0.0.1:${port}/${encodeURIComponent(name)}`;
        },
        stop: async () => {
          await pgBin("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => undefined);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
