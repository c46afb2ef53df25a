/**
 * Services started inside the CLI process on loopback port 0 (run without --agent, demo). The servers are
 * imported when started, not with this module: `carbonmon run --agent ADDR` (a job's prolog on every node)
 * would otherwise load both services, ~600 modules and 0.45 s of CPU, for a client that needs ~150 and 0.2 s.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAgentConfig, loadIntensityConfig } from "../../server/shared/config.js";

export interface LocalService {
  address: string;
  close(): Promise<void>;
}

/** Logs stay quiet (warn) unless CARBONMON_LOG_LEVEL asks otherwise: stderr is the command's. */
const logLevel = (configured: string, env: NodeJS.ProcessEnv): string => (env.CARBONMON_LOG_LEVEL ? configured : "warn");

/** CARBONMON_DATA_DIR when set, else a temporary directory removed on close. */
function dataDir(env: NodeJS.ProcessEnv): { dir: string; cleanup: () => void } {
  const configured = env.CARBONMON_DATA_DIR;
  if (configured) return { dir: configured, cleanup: () => undefined };
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-run-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The agent, configured from `env` (the command's environment) and `overrides`, on 127.0.0.1:0. */
export async function startLocalAgent(env: NodeJS.ProcessEnv, overrides: Record<string, string> = {}): Promise<LocalService> {
  const data = dataDir(env);
  try {
    const config = loadAgentConfig({
      env: {
        ...env,
        CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
        CARBONMON_AGENT_METRICS_LISTEN: "",
        CARBONMON_DATA_DIR: data.dir,
        ...overrides,
      },
    });
    const [{ startAgent }, { createLogger }] = await Promise.all([
      import("../../server/agent/main.js"),
      import("../../server/shared/log.js"),
    ]);
    const agent = await startAgent(config, createLogger("carbonmon-agent", logLevel(config.logLevel, env)));
    return { address: agent.running.address, close: async () => (await agent.running.shutdown(1000), data.cleanup()) };
  } catch (err) {
    data.cleanup();
    throw err;
  }
}

/** The intensity service, configured from `env` (the command's environment), on 127.0.0.1:0. */
export async function startLocalIntensity(env: NodeJS.ProcessEnv): Promise<LocalService> {
  const data = dataDir(env);
  try {
    const config = loadIntensityConfig({
      env: {
        ...env,
        CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
        CARBONMON_INTENSITY_METRICS_LISTEN: "",
        CARBONMON_DATA_DIR: data.dir,
      },
    });
    const [{ startIntensity }, { createLogger }] = await Promise.all([
      import("../../server/intensity/main.js"),
      import("../../server/shared/log.js"),
    ]);
    const server = await startIntensity(config, createLogger("carbonmon-intensity", logLevel(config.logLevel, env)));
    return { address: server.running.address, close: async () => (await server.running.shutdown(1000), data.cleanup()) };
  } catch (err) {
    data.cleanup();
    throw err;
  }
}
