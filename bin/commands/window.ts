/**
 * carbonmon window begin|end|get|cancel KEY: a window's edges as separate commands, for orchestrators whose
 * hooks run apart (a Slurm prolog and epilog, a CI job's first and last step, a cron pair).
 */
import { BeginWindowResponse, CancelWindowResponse, Measurement } from "../../proto/gen/carbonmon/agent/v1/agent.js";
import { gpuList, labelMap, parse, UsageError, type Command } from "./common.js";
import { appendCsv } from "./csv.js";
import { measurementText } from "./format.js";
import { AGENT_OPTION, AGENT_OPTIONS, withAgent } from "./inspect.js";
import type { CommandIo } from "./io.js";
import { emit, OUTPUT_OPTIONS, protoJson } from "./output.js";

export const WINDOW_ACTIONS = ["begin", "end", "get", "cancel"] as const;
type Action = (typeof WINDOW_ACTIONS)[number];

const HELP = `Usage: carbonmon window begin KEY [--gpus LIST] [--label k=v]... [options]
       carbonmon window end KEY [--csv FILE] [options]
       carbonmon window get KEY [options]
       carbonmon window cancel KEY [options]

A measuring window's edges as separate commands (BeginWindow, EndWindow, GetWindow, CancelWindow): begin
in one hook, end in another (e.g. a Slurm prolog and epilog; see examples/slurm). end and get print the
time, energy per device and carbon (or why there is none); end waits for the next counter update so the
end edge is interpolated, and is idempotent (repeating it prints the stored result).

  --gpus LIST     begin: GPU indices, e.g. 0,1 (this process's CUDA_VISIBLE_DEVICES numbering when it is
                  set, else the agent's); default every GPU
  --label k=v     begin: a label (repeatable; up to 32)
  --csv FILE      end: append one row for the measurement to FILE (a header first when FILE is new)
${AGENT_OPTION}`;

const OPTIONS = {
  ...AGENT_OPTIONS,
  gpus: { type: "string" },
  label: { type: "string", multiple: true },
  csv: { type: "string" },
  ...OUTPUT_OPTIONS,
} as const;

const ONLY: Record<string, Action[]> = { gpus: ["begin"], label: ["begin"], csv: ["end"] };

async function window(action: Action, argv: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parse(argv, OPTIONS, true);
  if (positionals.length !== 1) throw new UsageError(`window ${action} needs exactly one KEY, got ${positionals.length}`);
  for (const [option, actions] of Object.entries(ONLY)) {
    if ((values as Record<string, unknown>)[option] !== undefined && !actions.includes(action))
      throw new UsageError(`--${option} is for window ${actions.join("/")} only`);
  }
  const key = positionals[0]!;
  const text = await withAgent(values, io.env, async (client): Promise<string> => {
    switch (action) {
      case "begin": {
        const r = await client.beginWindow(key, { gpuIndices: gpuList(values.gpus), labels: labelMap(values.label) });
        if (values.json) return await protoJson("carbonmon.agent.v1.BeginWindowResponse", BeginWindowResponse, r);
        return `window ${r.key} begun at ${r.beginTime?.toISOString()}, gpus ${r.gpuIndices.join(",") || "-"}`;
      }
      case "cancel": {
        const r = await client.cancelWindow(key);
        if (values.json) return await protoJson("carbonmon.agent.v1.CancelWindowResponse", CancelWindowResponse, r);
        return `window ${r.key} cancelled (begun at ${r.beginTime?.toISOString()})`;
      }
      default: {
        const { measurement: m } =
          action === "end" ? await client.endWindow(key, { waitForCounterUpdate: true }) : await client.getWindow(key);
        if (values.csv !== undefined) appendCsv(values.csv, m);
        return values.json ? await protoJson("carbonmon.agent.v1.Measurement", Measurement, m) : measurementText(m).trimEnd();
      }
    }
  });
  emit(`${text}\n`, values.output, io.stdout);
  return 0;
}

export const windowCommands: Record<string, Command> = Object.fromEntries(
  WINDOW_ACTIONS.map((a) => [a, { help: HELP, run: (argv: string[], io: CommandIo) => window(a, argv, io) }]),
);
export const WINDOW_HELP = HELP;
