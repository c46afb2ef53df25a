#!/usr/bin/env -S node --max-semi-space-size=32
/**
 * The carbonmon command line.
 *   carbonmon agent [options]       serve the EnergyMonitor agent on this host
 *   carbonmon intensity [options]   serve the CarbonIntensity service
 *   carbonmon serve                 both, in one process, with their defaults (the quick start)
 *   carbonmon run|host|windows|window begin|end|get|cancel|watch|intensity now|history|forecast|best|demo
 *                                   clients (bin/commands/)
 * Installed, the package's bin is the compiled dist/bin/carbonmon.js (tsc keeps the shebang above);
 * --max-semi-space-size=32: see bin/carbonmon.js.
 */
// Only what every invocation needs is imported here: `carbonmon --version` and `--help` must start about as
// fast as node itself (bench/startup.ts), and `carbonmon agent` must not load the intensity service, nor a
// client command the services (gRPC, pino, undici, SQLite). Everything else is imported when it runs.
import { ConfigError, helpText } from "../server/shared/config.js";
import { AppError } from "../server/shared/errors.js";
import type { RunningServer } from "../server/shared/serve.js";
import { VERSION } from "../server/shared/version.js";

const USAGE = `carbonmon ${VERSION}: energy and carbon measurement for GPU fleets

Usage:
  carbonmon agent [options]       serve the EnergyMonitor agent (GPUs through NVML, CPU/DRAM through RAPL)
  carbonmon intensity [options]   serve the CarbonIntensity service
  carbonmon serve                 both services in one process, configured from the environment
  carbonmon run [options] -- CMD  run CMD inside a measuring window and print its energy and carbon
  carbonmon window begin|end|get|cancel KEY   a window's edges as separate commands (Slurm prolog/epilog)
  carbonmon host                  the agent's devices, backends and settings
  carbonmon windows               the agent's open windows (--all: recently ended too)
  carbonmon watch                 live power per device until Ctrl-C
  carbonmon intensity now|history|forecast --location L   carbon intensity from the intensity service
  carbonmon intensity best --locations DE,FR,GB --duration 2h   the cleanest time and place to run a job
  carbonmon token new --name N --scopes S,...   a bearer token and its line for CARBONMON_AUTH_TOKENS_FILE
  carbonmon demo                  both services, a measured workload and live power (simulated GPU without one)
  carbonmon <command> --help      the options of a command
  carbonmon --version
`;

async function serveAgent(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<RunningServer[]> {
  const { loadAgentConfig } = await import("../server/shared/config.js");
  const config = loadAgentConfig({ argv, env });
  const [{ createLogger }, { startAgent }] = await Promise.all([import("../server/shared/log.js"), import("../server/agent/main.js")]);
  const agent = await startAgent(config, createLogger("carbonmon-agent", config.logLevel));
  return [agent.running];
}

async function serveIntensity(argv: string[]): Promise<RunningServer[]> {
  const { loadIntensityConfig } = await import("../server/shared/config.js");
  const config = loadIntensityConfig({ argv });
  const [{ createLogger }, { startIntensity }] = await Promise.all([
    import("../server/shared/log.js"),
    import("../server/intensity/main.js"),
  ]);
  const intensity = await startIntensity(config, createLogger("carbonmon-intensity", config.logLevel));
  return [intensity.running];
}

/** Both services; the agent prices its windows through the one beside it unless CARBONMON_INTENSITY_ADDR says otherwise. */
async function serveBoth(): Promise<RunningServer[]> {
  const [intensity] = await serveIntensity([]);
  const [agent] = await serveAgent([], {
    ...process.env,
    CARBONMON_INTENSITY_ADDR: process.env.CARBONMON_INTENSITY_ADDR || intensity!.address,
  });
  return [agent!, intensity!];
}

function banner(servers: readonly RunningServer[]): string {
  const lines = servers.map((s, i) => `  ${(i === 0 ? "agent" : "intensity").padEnd(10)} ${s.address}`);
  return `carbonmon ${VERSION}\n${lines.join("\n")}\nPress Ctrl-C to stop.\n`;
}

const SERVERS: Record<string, { help?: () => Promise<string>; run: (argv: string[]) => Promise<RunningServer[]> }> = {
  agent: { help: async () => helpText("agent"), run: serveAgent },
  intensity: {
    help: async () => `${helpText("intensity")}\n${(await import("./commands/intensity-query.js")).INTENSITY_QUERY_HELP}`,
    run: serveIntensity,
  },
  serve: { run: serveBoth },
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === "--version") return void process.stdout.write(`${VERSION}\n`);
  if (name !== undefined && name !== "--help") {
    const [{ runClientCommand }, { processIo }] = await Promise.all([import("./commands/dispatch.js"), import("./commands/io.js")]);
    const code = await runClientCommand(argv, processIo());
    if (code !== undefined) {
      process.exitCode = code;
      // Let stdout drain and the loop empty; don't let a stray handle keep a finished command alive.
      setTimeout(() => process.exit(), 1000).unref();
      return;
    }
  }
  const command = name === undefined ? undefined : SERVERS[name];
  if (!command || name === "--help") {
    process.stdout.write(USAGE);
    process.exitCode = command || name === "--help" || name === undefined ? 0 : 2;
    return;
  }
  if (rest.includes("--help")) return void process.stdout.write((await command.help?.()) ?? USAGE);
  const servers = await command.run(rest);
  const [{ shutdownOnSignals }, { createLogger }, { reloadOnSighup }] = await Promise.all([
    import("../server/shared/serve.js"),
    import("../server/shared/log.js"),
    import("../server/shared/security/reload.js"),
  ]);
  const log = createLogger("carbonmon", "info");
  shutdownOnSignals(servers, log);
  reloadOnSighup(servers, log);
  if (name === "serve") process.stdout.write(banner(servers));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const hint = err instanceof AppError && err.hint ? ` (hint: ${err.hint})` : "";
  const message = err instanceof ConfigError ? err.message : `carbonmon: ${(err as Error).message}${hint}`;
  process.stderr.write(`${message}\n`);
  process.exit(2);
});
