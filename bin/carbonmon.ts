/**
 * The carbonmon command line.
 *   carbonmon agent [options]       serve the EnergyMonitor agent on this host
 *   carbonmon intensity [options]   serve the CarbonIntensity service
 *   carbonmon serve                 both, in one process, with their defaults (the quick start)
 */
import { startAgent } from "../server/agent/main.js";
import { startIntensity } from "../server/intensity/main.js";
import { ConfigError, helpText, loadAgentConfig, loadIntensityConfig } from "../server/shared/config.js";
import { createLogger } from "../server/shared/log.js";
import { shutdownOnSignals, type RunningServer } from "../server/shared/serve.js";
import { VERSION } from "../server/shared/version.js";

const USAGE = `carbonmon ${VERSION}: energy and carbon measurement for GPU fleets

Usage:
  carbonmon agent [options]       serve the EnergyMonitor agent (GPUs through NVML, CPU/DRAM through RAPL)
  carbonmon intensity [options]   serve the CarbonIntensity service
  carbonmon serve                 both services in one process, configured from the environment
  carbonmon <command> --help      the options of a command
  carbonmon --version
`;

async function serveAgent(argv: string[]): Promise<RunningServer[]> {
  const config = loadAgentConfig({ argv });
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

async function serveBoth(): Promise<RunningServer[]> {
  const [intensity] = await serveIntensity([]);
  const [agent] = await serveAgent([]);
  return [agent!, intensity!];
}

function banner(servers: readonly RunningServer[]): string {
  const lines = servers.map((s, i) => `  ${(i === 0 ? "agent" : "intensity").padEnd(10)} ${s.address}`);
  return `carbonmon ${VERSION}\n${lines.join("\n")}\nPress Ctrl-C to stop.\n`;
}

const COMMANDS: Record<string, { help?: string; run: (argv: string[]) => Promise<RunningServer[]> }> = {
  agent: { help: helpText("agent"), run: serveAgent },
  intensity: { help: helpText("intensity"), run: serveIntensity },
  serve: { run: serveBoth },
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === "--version") return void process.stdout.write(`${VERSION}\n`);
  const command = name === undefined ? undefined : COMMANDS[name];
  if (!command || name === "--help") {
    process.stdout.write(USAGE);
    process.exitCode = command || name === "--help" || name === undefined ? 0 : 2;
    return;
  }
  if (rest.includes("--help")) return void process.stdout.write(command.help ?? USAGE);
  const servers = await command.run(rest);
  shutdownOnSignals(servers, createLogger("carbonmon", "info"));
  if (name === "serve") process.stdout.write(banner(servers));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : `carbonmon: ${(err as Error).message}`;
  process.stderr.write(`${message}\n`);
  process.exit(2);
});
