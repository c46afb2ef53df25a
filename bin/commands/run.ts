/** carbonmon run: a command measured in a window, on a given agent or on one started in-process. */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { basename } from "node:path";
import { createAgentClient, type CarbonEmissionMeasurement } from "../../client/index.js";
import { Measurement } from "../../proto/gen/carbonmon/agent/v1/agent.js";
import { calling, CLIENT_OPTIONS, clientOptions, json, parse, SECURITY_HELP, SECURITY_OPTIONS, UsageError, agentAddress, type Command } from "./common.js";
import type { ClientSecurityOptions } from "../../client/index.js";
import { measurementText } from "./format.js";
import { startLocalAgent } from "./local.js";

const HELP = `Usage: carbonmon run [options] -- CMD [ARGS...]

Runs CMD (stdin, stdout and stderr inherited) inside a measuring window and prints the window's time,
energy per device and in total, uncertainty, and carbon (or why there is none) on stderr.
Exits with CMD's exit code (128+N when killed by signal N; 127 when CMD cannot be started).

  --agent ADDR    the agent to measure on; default: an agent started in this process on 127.0.0.1:0,
                  configured from the environment (a temporary data dir unless CARBONMON_DATA_DIR is set)
  --gpus LIST     GPU indices (CUDA_VISIBLE_DEVICES numbering), e.g. 0,1; default: every GPU
  --key KEY       the window's key; default run/<pid>-<epoch ms>
  --json          print the CarbonEmissionMeasurement (Zeus names) as JSON instead of the table, on
                  stderr too, so that CMD's stdout stays clean
  --help          this text
${SECURITY_HELP}`;

const OPTIONS = { agent: { type: "string" }, gpus: { type: "string" }, key: { type: "string" }, json: { type: "boolean" }, ...SECURITY_OPTIONS } as const;

export interface MeasuredRun {
  exitCode: number;
  measurement: CarbonEmissionMeasurement;
}

/** Spawns argv[0] with stdio inherited; resolves with its exit code (127/126 when it cannot start). */
export function runChild(argv: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: "inherit" });
    const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
    // Ctrl-C reaches the child from the terminal; carbonmon stays to end the window.
    const ignore = (): void => undefined;
    process.on("SIGTERM", forward).on("SIGHUP", forward).on("SIGINT", ignore);
    const done = (code: number): void => {
      process.off("SIGTERM", forward).off("SIGHUP", forward).off("SIGINT", ignore);
      resolve(code);
    };
    child.once("error", (err: NodeJS.ErrnoException) => {
      process.stderr.write(`carbonmon: cannot run ${argv[0]}: ${err.code === "ENOENT" ? "command not found" : err.message}\n`);
      done(err.code === "EACCES" ? 126 : 127);
    });
    child.once("exit", (code, signal) => done(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)));
  });
}

/** Runs argv inside window `key` on the agent at `address`; the window ends whatever happens to the command. */
export async function measureCommand(address: string, argv: string[], options: { key: string; gpuIndices?: number[]; security?: ClientSecurityOptions }): Promise<MeasuredRun> {
  const client = createAgentClient(address, { ...CLIENT_OPTIONS, security: options.security ?? {} });
  try {
    return await calling("agent", address, async () => {
      await client.beginWindow(options.key, { gpuIndices: options.gpuIndices, labels: { command: basename(argv[0]!).slice(0, 256) } });
      const exitCode = await runChild(argv);
      const measurement = await client.endWindow(options.key, { waitForCounterUpdate: true });
      return { exitCode, measurement };
    });
  } finally {
    client.close();
  }
}

function gpuList(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+(,\d+)*$/.test(text)) throw new UsageError(`--gpus expects indices like 0,1, got ${JSON.stringify(text)}`);
  return text.split(",").map(Number);
}

/** The measurement as the run prints it: JSON (Zeus names, the full message in protobuf's JSON form) or the table. */
export function measurementOutput(m: CarbonEmissionMeasurement, asJson: boolean): string {
  return asJson ? `${json({ ...m, measurement: Measurement.toJSON(m.measurement) })}\n` : measurementText(m.measurement);
}

async function run(argv: string[]): Promise<number> {
  const sep = argv.indexOf("--");
  if (sep < 0 || sep === argv.length - 1) throw new UsageError("run needs a command: carbonmon run [options] -- CMD [ARGS...]");
  const { values } = parse(argv.slice(0, sep), OPTIONS);
  const gpuIndices = gpuList(values.gpus);
  const key = values.key ?? `run/${process.pid}-${Date.now()}`;
  const { security } = clientOptions(values);
  const local = values.agent === undefined ? await startLocalAgent() : undefined;
  const address = local?.address ?? agentAddress(values.agent);
  try {
    const { exitCode, measurement } = await measureCommand(address, argv.slice(sep + 1), { key, gpuIndices, security: local ? {} : security });
    process.stderr.write(measurementOutput(measurement, values.json === true));
    return exitCode;
  } finally {
    await local?.close();
  }
}

export const runCommand: Command = { help: HELP, run };
