/** carbonmon host and carbonmon windows: GetHost and ListWindows, as text or canonical JSON (ListWindowsResponse). */
import { createAgentClient } from "../../client/index.js";
import { GetHostResponse, ListWindowsResponse } from "../../proto/gen/carbonmon/agent/v1/agent.js";
import {
  agentAddress,
  calling,
  clientOptions,
  parse,
  SECURITY_HELP,
  SECURITY_OPTIONS,
  type Command,
  type SecurityValues,
} from "./common.js";
import { hostText, windowsText } from "./format.js";
import type { CommandIo } from "./io.js";
import { emit, OUTPUT_HELP, OUTPUT_OPTIONS, protoJson } from "./output.js";

export const AGENT_OPTION = `  --agent ADDR    the agent; default CARBONMON_AGENT_LISTEN, else 127.0.0.1:50051
${OUTPUT_HELP}  --help          this text
${SECURITY_HELP}`;

/** What every agent command takes: --agent, TLS and the token. */
export const AGENT_OPTIONS = { agent: { type: "string" }, ...SECURITY_OPTIONS } as const;

export async function withAgent<T>(
  values: SecurityValues & { agent?: string | undefined },
  env: NodeJS.ProcessEnv,
  fn: (client: ReturnType<typeof createAgentClient>) => Promise<T>,
): Promise<T> {
  const address = agentAddress(values.agent, env);
  const client = createAgentClient(address, clientOptions(values, env));
  try {
    return await calling("agent", address, () => fn(client));
  } finally {
    client.close();
  }
}

async function host(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parse(argv, { ...AGENT_OPTIONS, ...OUTPUT_OPTIONS });
  const response = await withAgent(values, io.env, (c) => c.getHost());
  emit(
    values.json ? `${await protoJson("carbonmon.agent.v1.GetHostResponse", GetHostResponse, response)}\n` : hostText(response),
    values.output,
    io.stdout,
  );
  return 0;
}

async function windows(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parse(argv, { ...AGENT_OPTIONS, all: { type: "boolean" }, ...OUTPUT_OPTIONS });
  const list = await withAgent(values, io.env, (c) => c.listWindows({ includeEnded: values.all === true }));
  const json = async (): Promise<string> =>
    `${await protoJson("carbonmon.agent.v1.ListWindowsResponse", ListWindowsResponse, { windows: list })}\n`;
  emit(values.json ? await json() : windowsText(list), values.output, io.stdout);
  return 0;
}

export const hostCommand: Command = {
  help: `Usage: carbonmon host [options]\n\nThe agent's host: GPUs, RAPL zones, backends and their state, settings.\n\n${AGENT_OPTION}`,
  run: host,
};

export const windowsCommand: Command = {
  help: `Usage: carbonmon windows [options]\n\nThe agent's open windows.\n\n  --all           also recently ended windows\n${AGENT_OPTION}`,
  run: windows,
};
