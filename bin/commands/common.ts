/** What every command shares: option parsing, default addresses, and errors turned into one line and an exit code. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { status } from "@grpc/grpc-js";
import { CarbonmonClientError, clientSecurityFromFiles, type ClientSecurityOptions } from "../../client/index.js";
import { ConfigError, loadClientSecurityConfig, SETTINGS } from "../../server/shared/config.js";
import type { CommandIo } from "./io.js";

/** A bad command line: exit code 2. */
export class UsageError extends Error {}

/** A failure already explained in one line: exit code `code`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code = 1,
  ) {
    super(message);
  }
}

export type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Command {
  help: string;
  run(argv: string[], io: CommandIo): Promise<number>;
}

/** What parse() returns (named, so that the build can write it into the declarations). */
export type Parsed<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; allowPositionals: boolean; strict: true }>
>;

/** Parses argv strictly (unknown options and stray arguments are a UsageError). */
export function parse<O extends Options>(argv: string[], options: O, positionals = false): Parsed<O> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: positionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]!);
  }
}

function settingDefault(env: string): string {
  const s = SETTINGS.find((x) => x.env === env);
  return s && "default" in s ? s.default : "";
}

/** A listen address made dialable: 0.0.0.0 and [::] become loopback. */
function dialable(address: string): string {
  return address.replace(/^0\.0\.0\.0:/, "127.0.0.1:").replace(/^\[::\]:/, "[::1]:");
}

/** --agent, else CARBONMON_AGENT_LISTEN, else 127.0.0.1:50051. */
export function agentAddress(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? dialable(env.CARBONMON_AGENT_LISTEN || settingDefault("CARBONMON_AGENT_LISTEN"));
}

/** --addr, else CARBONMON_INTENSITY_ADDR, else CARBONMON_INTENSITY_LISTEN, else 127.0.0.1:50061. */
export function intensityAddress(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const set = env.CARBONMON_INTENSITY_ADDR || env.CARBONMON_INTENSITY_LISTEN;
  return flag ?? dialable(set || settingDefault("CARBONMON_INTENSITY_LISTEN"));
}

/** Client options for a CLI: fail fast. */
export const CLIENT_OPTIONS = { deadlineMs: 5_000, retries: 1 } as const;

/** TLS and token options every client command takes (also CARBONMON_CLIENT_TLS_*_FILE, CARBONMON_TOKEN_FILE). */
export const SECURITY_OPTIONS = {
  "tls-ca": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "token-file": { type: "string" },
} as const;

export const SECURITY_HELP = `  --tls-ca FILE      PEM CA of the service's certificate: TLS (CARBONMON_CLIENT_TLS_CA_FILE)
  --tls-cert FILE    PEM client certificate, mutual TLS (CARBONMON_CLIENT_TLS_CERT_FILE)
  --tls-key FILE     its PEM key (CARBONMON_CLIENT_TLS_KEY_FILE)
  --token-file FILE  file holding the token to send (CARBONMON_TOKEN_FILE)
`;

export type SecurityValues = { [K in keyof typeof SECURITY_OPTIONS]?: string | undefined };

/** CLIENT_OPTIONS with TLS and the token from flags or the environment; a bad setting or unreadable file: exit 2. */
export function clientOptions(values: SecurityValues, env: NodeJS.ProcessEnv): typeof CLIENT_OPTIONS & { security: ClientSecurityOptions } {
  try {
    const files = loadClientSecurityConfig(
      {
        "--tls-ca": values["tls-ca"],
        "--tls-cert": values["tls-cert"],
        "--tls-key": values["tls-key"],
        "--token-file": values["token-file"],
      },
      env,
    );
    return { ...CLIENT_OPTIONS, security: clientSecurityFromFiles(files) };
  } catch (err) {
    throw new CliError(`carbonmon: ${err instanceof ConfigError ? err.problems.join("; ") : (err as Error).message}`, 2);
  }
}

/** A client error as one line naming the service and its address. */
export function clientFailure(err: unknown, what: string, address: string): CliError {
  if (!(err instanceof CarbonmonClientError)) return new CliError(`carbonmon: ${(err as Error).message ?? String(err)}`);
  if (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED) {
    return new CliError(`carbonmon: cannot reach the ${what} at ${address} (${err.codeName}: ${err.details})`);
  }
  return new CliError(`carbonmon: ${what} at ${address}: ${err.message}`);
}

/** Runs fn, turning client errors into one line naming the address. */
export async function calling<T>(what: string, address: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw err instanceof CliError || err instanceof UsageError ? err : clientFailure(err, what, address);
  }
}

/** Positive whole number option. */
export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n <= 0) throw new UsageError(`${name} expects a positive whole number, got ${JSON.stringify(value)}`);
  return n;
}

/** --gpus 0,1 → [0, 1]. */
export function gpuList(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+(,\d+)*$/.test(text)) throw new UsageError(`--gpus expects indices like 0,1, got ${JSON.stringify(text)}`);
  return text.split(",").map(Number);
}

/** --label k=v (repeatable) → { k: "v" }. */
export function labelMap(pairs: string[] | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--label expects key=value, got ${JSON.stringify(pair)}`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}
