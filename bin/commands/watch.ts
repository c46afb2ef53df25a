/** carbonmon watch: live power per device until Ctrl-C. */
import type { PowerSample } from "../../client/index.js";
import { createAgentClient } from "../../client/index.js";
import type { ClientSecurityOptions } from "../../client/index.js";
import {
  agentAddress,
  calling,
  CLIENT_OPTIONS,
  clientOptions,
  parse,
  positiveInt,
  SECURITY_HELP,
  SECURITY_OPTIONS,
  type Command,
} from "./common.js";
import { PowerSample as PowerSampleCodec } from "../../proto/gen/carbonmon/agent/v1/agent.js";
import { mark, SIMULATED_BANNER } from "./format.js";
import type { CommandIo, Output } from "./io.js";
import { protoJson } from "./output.js";

const HELP = `Usage: carbonmon watch [options]

Live power per device until Ctrl-C. On a terminal the lines update in place with a bar per device;
with --json, or when stdout is not a terminal, one JSON object per sample and line.

  --agent ADDR      the agent; default CARBONMON_AGENT_LISTEN, else 127.0.0.1:50051
  --period-ms N     time between samples (default 1000; at least the agent's sampling period)
  --json            one PowerSample per line, as canonical protobuf JSON (as grpcurl prints it)
  --help            this text
${SECURITY_HELP}`;

/** Per device power ("gpu:0" → W) of a sample. */
export function powers(s: PowerSample): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const [domain, map] of [
    ["gpu", s.gpuPowerW],
    ["cpu", s.cpuPowerW],
    ["dram", s.dramPowerW],
  ] as const) {
    for (const [i, w] of Object.entries(map)) out.push([`${domain}:${i}`, w]);
  }
  return out;
}

/** One line of canonical protobuf JSON (the PowerSample as grpcurl would print it). */
export async function sampleJson(s: PowerSample): Promise<string> {
  return `${await protoJson("carbonmon.agent.v1.PowerSample", PowerSampleCodec, s)}\n`;
}

/** Text lines for a sample: device, watts, and a bar (scaled to 500 W, or the peak seen). */
export function sampleLines(s: PowerSample, peak: { w: number }): string {
  const rows = powers(s);
  peak.w = Math.max(peak.w, 500, ...rows.map(([, w]) => w));
  const lines = rows.map(
    ([d, w]) => `${d.padEnd(7)} ${w.toFixed(1).padStart(8)} W  ${"█".repeat(Math.round((w / peak.w) * 30)).padEnd(30, "·")}`,
  );
  return mark(`${(lines.length ? lines : ["no devices"]).join("\n")}\n`, s.simulated);
}

/** Streams samples to stdout until `signal` aborts or `limit` samples were shown. */
export async function streamPower(
  address: string,
  o: { periodMs: number; json: boolean; signal: AbortSignal; limit?: number; security?: ClientSecurityOptions },
  stdout: Output,
): Promise<void> {
  const client = createAgentClient(address, { ...CLIENT_OPTIONS, security: o.security ?? {} });
  const tty = stdout.isTTY === true && !o.json;
  const peak = { w: 0 };
  let shown = 0;
  let previousLines = 0;
  try {
    await calling("agent", address, async () => {
      for await (const sample of client.watchPower({ periodMs: o.periodMs, signal: o.signal })) {
        if (!tty) stdout.write(o.json ? await sampleJson(sample) : sampleLines(sample, peak));
        else {
          const text = `${sample.simulated ? `${SIMULATED_BANNER}\n` : ""}${sampleLines(sample, peak)}`;
          stdout.write(`${previousLines ? `\x1b[${previousLines}F\x1b[J` : ""}${text}`);
          previousLines = text.split("\n").length - 1;
        }
        if (o.limit !== undefined && ++shown >= o.limit) break;
      }
    });
  } finally {
    client.close();
  }
}

async function watch(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parse(argv, {
    agent: { type: "string" },
    "period-ms": { type: "string" },
    json: { type: "boolean" },
    ...SECURITY_OPTIONS,
  });
  const { security } = clientOptions(values, io.env);
  const periodMs = positiveInt("--period-ms", values["period-ms"], 1000);
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  process.once("SIGINT", stop).once("SIGTERM", stop);
  try {
    await streamPower(
      agentAddress(values.agent, io.env),
      { periodMs, json: values.json === true, signal: abort.signal, security },
      io.stdout,
    );
  } finally {
    process.off("SIGINT", stop).off("SIGTERM", stop);
  }
  return 0;
}

export const watchCommand: Command = { help: HELP, run: watch };
