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
import type { Command } from "./commands/common.js";

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

/** The client commands, each imported when it runs. */
const CLIENTS: Record<string, () => Promise<Command>> = {
  run: async () => (await import("./commands/run.js")).runCommand,
  host: async () => (await import("./commands/inspect.js")).hostCommand,
  windows: async () => (await import("./commands/inspect.js")).windowsCommand,
  watch: async () => (await import("./commands/watch.js")).watchCommand,
  demo: async () => (await import("./commands/demo.js")).demoCommand,
  token: async () => (await import("./commands/token.js")).tokenCommand,
};

/** The client command for argv, with its name, if argv names one ("intensity now" included). */
async function clientCommand(name: string, rest: string[]): Promise<{ label: string; command: Command; argv: string[] } | undefined> {
  // "intensity" followed by a word may be a query; followed by an option, it is the service.
  if (name === "intensity" && rest[0] !== undefined && !rest[0].startsWith("-")) {
    const query = (await import("./commands/intensity-query.js")).intensityQueryCommands[rest[0]];
    if (query) return { label: `intensity ${rest[0]}`, command: query, argv: rest.slice(1) };
  }
  if (name === "window") {
    const { WINDOW_HELP, windowCommands } = await import("./commands/window.js");
    const action = rest[0] === undefined ? undefined : windowCommands[rest[0]];
    if (action) return { label: `window ${rest[0]}`, command: action, argv: rest.slice(1) };
    return { label: "window", command: { help: WINDOW_HELP, run: windowUsage(rest[0]) }, argv: rest };
  }
  return Object.hasOwn(CLIENTS, name) ? { label: name, command: await CLIENTS[name]!(), argv: rest } : undefined;
}

/** `carbonmon window` without begin/end/get/cancel. */
const windowUsage = (given: string | undefined) => async (): Promise<number> => {
  const { UsageError } = await import("./commands/common.js");
  throw new UsageError(
    given === undefined
      ? "window needs begin, end, get or cancel"
      : `unknown window action ${JSON.stringify(given)}: begin, end, get or cancel`,
  );
};

/** Options before a "--" (what follows belongs to the command that `run` starts). */
const ownArgs = (argv: string[]): string[] => (argv.includes("--") ? argv.slice(0, argv.indexOf("--")) : argv);

async function runClient(label: string, command: Command, argv: string[]): Promise<number> {
  if (ownArgs(argv).includes("--help")) return (void process.stdout.write(command.help), 0);
  const { CliError, UsageError } = await import("./commands/common.js");
  try {
    return await command.run(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`carbonmon ${label}: ${err.message} (see carbonmon ${label} --help)\n`);
      return 2;
    }
    if (err instanceof CliError) return (process.stderr.write(`${err.message}\n`), err.code);
    throw err;
  }
}

/** Set once argv names a client command: its failures exit 1, the services' 2. */
let runningClient = false;

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === "--version") return void process.stdout.write(`${VERSION}\n`);
  const client = name === undefined ? undefined : await clientCommand(name, rest);
  if (client) {
    runningClient = true;
    process.exitCode = await runClient(client.label, client.command, client.argv);
    // Let stdout drain and the loop empty; don't let a stray handle keep a finished command alive.
    setTimeout(() => process.exit(), 1000).unref();
    return;
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
  process.exit(runningClient && !(err instanceof ConfigError) ? 1 : 2);
});
