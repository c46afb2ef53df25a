/** carbonmon run: a command measured in a window, on a given agent or on one started in-process; never blocked by the agent. */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { basename } from "node:path";
import { createAgentClient, type CarbonEmissionMeasurement, type ClientSecurityOptions } from "../../client/index.js";
import { Measurement } from "../../proto/gen/carbonmon/agent/v1/agent.js";
import {
  agentAddress,
  clientFailure,
  CLIENT_OPTIONS,
  clientOptions,
  gpuList,
  labelMap,
  parse,
  SECURITY_HELP,
  SECURITY_OPTIONS,
  UsageError,
  type Command,
} from "./common.js";
import { appendCsv } from "./csv.js";
import { measurementText } from "./format.js";
import type { CommandIo, Output } from "./io.js";
import { startLocalAgent } from "./local.js";
import { emit, OUTPUT_OPTIONS, protoJson } from "./output.js";

const HELP = `Usage: carbonmon run [options] -- CMD [ARGS...]

Runs CMD inside a measuring window. CMD's stdin, stdout and stderr are its own, untouched; the window's
time, energy per device and in total, uncertainty, and carbon (or why there is none) go to stderr after
CMD ends, or to FILE with -o. Exits with CMD's exit code (128+N when killed by signal N; 127 when CMD
cannot be started). When the agent cannot be reached (or refuses the window), CMD still runs: one warning
on stderr, no measurement, CMD's exit code (--require-agent: exit 1 without running CMD instead).

  --agent ADDR      the agent to measure on; default: an agent started in this process on 127.0.0.1:0,
                    configured from the environment (a temporary data dir unless CARBONMON_DATA_DIR is set)
  --gpus LIST       GPU indices (CUDA_VISIBLE_DEVICES numbering), e.g. 0,1; default: every GPU
  --key KEY         the window's key; default run/<pid>-<epoch ms>
  --label k=v       a label on the window (repeatable; the command's name is always label "command")
  --json            the Measurement as canonical protobuf JSON on one line (as grpcurl prints it)
  -o, --output FILE write the result to FILE instead of stderr
  --csv FILE        append one row for the measurement to FILE (a header first when FILE is new)
  --require-agent   fail (exit 1) when the agent cannot measure, instead of running CMD unmeasured
  --help            this text
${SECURITY_HELP}`;

const OPTIONS = {
  agent: { type: "string" },
  gpus: { type: "string" },
  key: { type: "string" },
  label: { type: "string", multiple: true },
  csv: { type: "string" },
  "require-agent": { type: "boolean" },
  ...OUTPUT_OPTIONS,
  ...SECURITY_OPTIONS,
} as const;

export interface MeasuredRun {
  exitCode: number;
  /** Undefined when the agent could not measure and the command ran unmeasured. */
  measurement?: CarbonEmissionMeasurement;
}

export interface MeasureOptions {
  key: string;
  gpuIndices?: number[];
  labels?: Record<string, string>;
  /** Agent failures throw (exit 1; the command is not run when BeginWindow fails). Default true. */
  requireAgent?: boolean;
  /** TLS and the token for the agent (none: plaintext, no token). */
  security?: ClientSecurityOptions;
  /** Where the warnings and the command's start failure go. */
  stderr: Output;
}

/** Spawns argv[0] with stdio inherited; resolves with its exit code (127/126 when it cannot start). */
export function runChild(argv: string[], stderr: Output): Promise<number> {
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
      stderr.write(`carbonmon: cannot run ${argv[0]}: ${err.code === "ENOENT" ? "command not found" : err.message}\n`);
      done(err.code === "EACCES" ? 126 : 127);
    });
    child.once("exit", (code, signal) => done(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)));
  });
}

/**
 * Runs argv inside window `key` on the agent at `address`; the window ends whatever happens to the command.
 * Without requireAgent, an agent that cannot begin or end the window costs one warning on stderr, never the
 * command (as /usr/bin/time or CodeCarbon: monitoring never blocks the workload).
 */
export async function measureCommand(address: string, argv: string[], options: MeasureOptions): Promise<MeasuredRun> {
  const client = createAgentClient(address, { ...CLIENT_OPTIONS, security: options.security ?? {} });
  const requireAgent = options.requireAgent ?? true;
  const tolerate = (err: unknown): void => {
    const failure = clientFailure(err, "agent", address);
    if (requireAgent) throw failure;
    options.stderr.write(
      `${failure.message.replace(/^carbonmon: /, "carbonmon: warning: ")}; ${argv[0]} runs unmeasured (--require-agent to refuse)\n`,
    );
  };
  try {
    const labels = { ...options.labels, command: basename(argv[0]!).slice(0, 256) };
    const begun = await client.beginWindow(options.key, { gpuIndices: options.gpuIndices, labels }).then(
      () => true,
      (err: unknown) => (tolerate(err), false),
    );
    const exitCode = await runChild(argv, options.stderr);
    if (!begun) return { exitCode };
    try {
      return { exitCode, measurement: await client.endWindow(options.key, { waitForCounterUpdate: true }) };
    } catch (err) {
      tolerate(err);
      return { exitCode };
    }
  } finally {
    client.close();
  }
}

/** The measurement as the run prints it: one line of canonical protobuf JSON, or the table. */
export async function measurementOutput(m: Measurement, asJson: boolean): Promise<string> {
  return asJson ? `${await protoJson("carbonmon.agent.v1.Measurement", Measurement, m)}\n` : measurementText(m);
}

async function run(argv: string[], io: CommandIo): Promise<number> {
  const sep = argv.indexOf("--");
  if (sep < 0 || sep === argv.length - 1) throw new UsageError("run needs a command: carbonmon run [options] -- CMD [ARGS...]");
  const { values } = parse(argv.slice(0, sep), OPTIONS);
  const command = argv.slice(sep + 1);
  const options = {
    key: values.key ?? `run/${process.pid}-${Date.now()}`,
    gpuIndices: gpuList(values.gpus),
    labels: labelMap(values.label),
  };
  const { security } = clientOptions(values, io.env);
  const local = values.agent === undefined ? await startLocalAgent(io.env) : undefined;
  const address = local?.address ?? agentAddress(values.agent, io.env);
  try {
    // The in-process agent listens on loopback without TLS; an agent named by --agent gets TLS and the token.
    const { exitCode, measurement } = await measureCommand(address, command, {
      ...options,
      requireAgent: values["require-agent"] === true,
      security: local ? {} : security,
      stderr: io.stderr,
    });
    if (measurement) {
      emit(await measurementOutput(measurement.measurement, values.json === true), values.output, io.stderr);
      if (values.csv !== undefined) appendCsv(values.csv, measurement.measurement, { command: command.join(" "), exitCode });
    }
    return exitCode;
  } finally {
    await local?.close();
  }
}

export const runCommand: Command = { help: HELP, run };
