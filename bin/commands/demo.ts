/**
 * carbonmon demo: both services on loopback, a measured 2 s busy loop (through the same code as
 * `carbonmon run`), then ~3 s of live power. Without a GPU the agent uses a simulated one, and every
 * line that shows its numbers says SIMULATED.
 */
import { createAgentClient } from "../../client/index.js";
import { CLIENT_OPTIONS, parse, positiveInt, type Command } from "./common.js";
import { mark, measurementText, SIMULATED_BANNER } from "./format.js";
import type { CommandIo } from "./io.js";
import { startLocalAgent, startLocalIntensity, type LocalService } from "./local.js";
import { measureCommand } from "./run.js";
import { streamPower } from "./watch.js";

const HELP = `Usage: carbonmon demo

Starts the agent and the intensity service on 127.0.0.1 (ports chosen by the system, configured from the
environment, temporary data unless CARBONMON_DATA_DIR is set), measures a 2 s busy loop in a child
process with its grams of CO2eq (at CARBONMON_LOCATION, default DE), streams power for about 3 s, then
stops everything. On a machine without a GPU (NVML
unavailable) the agent uses a SIMULATED GPU: its numbers are not measurements and are marked as such.

  --busy-ms N     how long the measured busy loop runs, ms (default 2000)
  --help          this text
`;

/** Where the demo's electricity is priced unless CARBONMON_LOCATION says (no network needed: the offline default covers it). */
const DEMO_LOCATION = "DE";

const busyLoop = (ms: number): string => `const end = Date.now() + ${ms}; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1);`;

async function isSimulated(address: string): Promise<boolean> {
  const client = createAgentClient(address, CLIENT_OPTIONS);
  try {
    return (await client.getHost()).gpus.some((g) => g.simulated);
  } finally {
    client.close();
  }
}

async function show(agent: LocalService, intensity: LocalService, location: string, busyMs: number, io: CommandIo): Promise<void> {
  const simulated = await isSimulated(agent.address);
  const say = (text: string): boolean => io.stdout.write(mark(text, simulated));
  if (simulated) say(`${SIMULATED_BANNER}\n`);
  say(`agent ${agent.address}, intensity service ${intensity.address}\n`);
  say(`carbon priced for location ${location} (set CARBONMON_LOCATION for yours; without provider keys: yearly averages)\n`);
  say(`measuring a ${busyMs / 1000} s busy loop (${process.execPath} -e ...)\n`);
  const { measurement } = await measureCommand(agent.address, [process.execPath, "-e", busyLoop(busyMs)], {
    key: `demo/${process.pid}-${Date.now()}`,
    stderr: io.stderr,
  });
  io.stdout.write(mark(measurementText(measurement!.measurement), simulated && !measurement!.measurement.simulated));
  say("power for 3 s:\n");
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 3_000);
  try {
    await streamPower(agent.address, { periodMs: 500, json: false, signal: abort.signal }, io.stdout);
  } finally {
    clearTimeout(timer);
  }
  if (simulated) say(`${SIMULATED_BANNER}\n`);
}

async function demo(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parse(argv, { "busy-ms": { type: "string" } });
  const busyMs = positiveInt("--busy-ms", values["busy-ms"], 2000);
  const intensity = await startLocalIntensity(io.env);
  let agent: LocalService | undefined;
  try {
    const location = io.env.CARBONMON_LOCATION || DEMO_LOCATION;
    agent = await startLocalAgent(io.env, {
      CARBONMON_INTENSITY_ADDR: intensity.address,
      CARBONMON_LOCATION: location,
      CARBONMON_SIMULATED_GPU: io.env.CARBONMON_SIMULATED_GPU || "true",
    });
    await show(agent, intensity, location, busyMs, io);
  } finally {
    await agent?.close();
    await intensity.close();
  }
  return 0;
}

export const demoCommand: Command = { help: HELP, run: demo };
