/** carbonmon host and carbonmon windows: GetHost and ListWindows, as text or JSON. */
import { createAgentClient } from "../../client/index.js";
import { agentAddress, calling, clientOptions, json, parse, SECURITY_HELP, SECURITY_OPTIONS, type Command } from "./common.js";
import { hostText, windowsText } from "./format.js";

const AGENT_OPTION = `  --agent ADDR    the agent; default CARBONMON_AGENT_LISTEN, else 127.0.0.1:50051
  --json          the response as JSON
  --help          this text
${SECURITY_HELP}`;

async function withAgent<T>(values: Parameters<typeof clientOptions>[0] & { agent?: string | undefined }, fn: (client: ReturnType<typeof createAgentClient>) => Promise<T>): Promise<T> {
  const address = agentAddress(values.agent);
  const client = createAgentClient(address, clientOptions(values));
  try {
    return await calling("agent", address, () => fn(client));
  } finally {
    client.close();
  }
}

async function host(argv: string[]): Promise<number> {
  const { values } = parse(argv, { agent: { type: "string" }, json: { type: "boolean" }, ...SECURITY_OPTIONS });
  const response = await withAgent(values, (c) => c.getHost());
  process.stdout.write(values.json ? `${json(response)}\n` : hostText(response));
  return 0;
}

async function windows(argv: string[]): Promise<number> {
  const { values } = parse(argv, { agent: { type: "string" }, json: { type: "boolean" }, all: { type: "boolean" }, ...SECURITY_OPTIONS });
  const list = await withAgent(values, (c) => c.listWindows({ includeEnded: values.all === true }));
  process.stdout.write(values.json ? `${json(list)}\n` : windowsText(list));
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
