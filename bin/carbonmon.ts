/**
 * The carbonmon command line.
 *   carbonmon agent [options]       serve the EnergyMonitor agent on this host
 *   carbonmon intensity [options]   serve the CarbonIntensity service
 *   carbonmon serve                 both, in one process, with their defaults (the quick start)
 *   carbonmon run|host|windows|watch|intensity now|history|forecast|demo   clients (bin/commands/)
 */
import { startAgent } from "../server/agent/main.js";
import { startIntensity } from "../server/intensity/main.js";
import { ConfigError, helpText, loadAgentConfig, loadIntensityConfig } from "../server/shared/config.js";
import { AppError } from "../server/shared/errors.js";
import { createLogger } from "../server/shared/log.js";
import { shutdownOnSignals, type RunningServer } from "../server/shared/serve.js";
import { reloadOnSighup } from "../server/shared/security/reload.js";
import { VERSION } from "../server/shared/version.js";
import { CliError, UsageError, type Command } from "./commands/common.js";
import { demoCommand } from "./commands/demo.js";
import { hostCommand, windowsCommand } from "./commands/inspect.js";
import { INTENSITY_QUERY_HELP, intensityQueryCommands } from "./commands/intensity-query.js";
import { runCommand } from "./commands/run.js";
import { tokenCommand } from "./commands/token.js";
import { watchCommand } from "./commands/watch.js";

const USAGE = `carbonmon ${VERSION}: energy and carbon measurement for GPU fleets

Usage:
  carbonmon agent [options]       serve the EnergyMonitor agent (GPUs through NVML, CPU/DRAM through RAPL)
  carbonmon intensity [options]   serve the CarbonIntensity service
  carbonmon serve                 both services in one process, configured from the environment
  carbonmon run [options] -- CMD  run CMD inside a measuring window and print its energy and carbon
  carbonmon host                  the agent's devices, backends and settings
  carbonmon windows               the agent's open windows (--all: recently ended too)
  carbonmon watch                 live power per device until Ctrl-C
  carbonmon intensity now|history|forecast --location L   carbon intensity from the intensity service
  carbonmon token new --name N --scopes S,...   a bearer token and its line for CARBONMON_AUTH_TOKENS_FILE
  carbonmon demo                  both services, a measured workload and live power (simulated GPU without one)
  carbonmon <command> --help      the options of a command
  carbonmon --version
`;

async function serveAgent(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<RunningServer[]> {
  const config = loadAgentConfig({ argv, env });
  const log = createLogger("carbonmon-agent", config.logLevel);
  const agent = await startAgent(config, log);
  return [agent.running];
}

async function serveIntensity(argv: string[]): Promise<RunningServer[]> {
  const config = loadIntensityConfig({ argv });
  const log = createLogger("carbonmon-intensity", config.logLevel);
  const intensity = await startIntensity(config, log);
  return [intensity.running];
}

/** Both services; the agent prices its windows through the one beside it unless CARBONMON_INTENSITY_ADDR says otherwise. */
async function serveBoth(): Promise<RunningServer[]> {
  const [intensity] = await serveIntensity([]);
  const [agent] = await serveAgent([], { ...process.env, CARBONMON_INTENSITY_ADDR: process.env.CARBONMON_INTENSITY_ADDR || intensity!.address });
  return [agent!, intensity!];
}

function banner(servers: readonly RunningServer[]): string {
  const lines = servers.map((s, i) => `  ${(i === 0 ? "agent" : "intensity").padEnd(10)} ${s.address}`);
  return `carbonmon ${VERSION}\n${lines.join("\n")}\nPress Ctrl-C to stop.\n`;
}

const SERVERS: Record<string, { help?: string; run: (argv: string[]) => Promise<RunningServer[]> }> = {
  agent: { help: helpText("agent"), run: serveAgent },
  intensity: { help: `${helpText("intensity")}\n${INTENSITY_QUERY_HELP}`, run: serveIntensity },
  serve: { run: serveBoth },
};

const CLIENTS: Record<string, Command> = { run: runCommand, host: hostCommand, windows: windowsCommand, watch: watchCommand, demo: demoCommand, token: tokenCommand };

/** The client command for argv, with its name, if argv names one ("intensity now" included). */
function clientCommand(name: string, rest: string[]): { label: string; command: Command; argv: string[] } | undefined {
  const query = name === "intensity" && rest[0] !== undefined ? intensityQueryCommands[rest[0]] : undefined;
  if (query) return { label: `intensity ${rest[0]}`, command: query, argv: rest.slice(1) };
  const command = CLIENTS[name];
  return command ? { label: name, command, argv: rest } : undefined;
}

/** Options before a "--" (what follows belongs to the command that `run` starts). */
const ownArgs = (argv: string[]): string[] => (argv.includes("--") ? argv.slice(0, argv.indexOf("--")) : argv);

async function runClient(label: string, command: Command, argv: string[]): Promise<number> {
  if (ownArgs(argv).includes("--help")) return void process.stdout.write(command.help), 0;
  try {
    return await command.run(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`carbonmon ${label}: ${err.message} (see carbonmon ${label} --help)\n`);
      return 2;
    }
    if (err instanceof CliError) return process.stderr.write(`${err.message}\n`), err.code;
    throw err;
  }
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === "--version") return void process.stdout.write(`${VERSION}\n`);
  const client = name === undefined ? undefined : clientCommand(name, rest);
  if (client) {
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
  if (rest.includes("--help")) return void process.stdout.write(command.help ?? USAGE);
  const servers = await command.run(rest);
  const log = createLogger("carbonmon", "info");
  shutdownOnSignals(servers, log);
  reloadOnSighup(servers, log);
  if (name === "serve") process.stdout.write(banner(servers));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const hint = err instanceof AppError && err.hint ? ` (hint: ${err.hint})` : "";
  const message = err instanceof ConfigError ? err.message : `carbonmon: ${(err as Error).message}${hint}`;
  process.stderr.write(`${message}\n`);
  const client = process.argv[2] !== undefined && clientCommand(process.argv[2], process.argv.slice(3)) !== undefined;
  process.exit(client && !(err instanceof ConfigError) ? 1 : 2);
});
