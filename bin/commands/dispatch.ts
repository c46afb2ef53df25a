/**
 * From argv to a client command's exit code: which command argv names ("intensity now" and "window begin"
 * included), its --help, and every failure turned into one line on stderr and an exit code (a bad command
 * line 2, a failed call 1). bin/carbonmon.ts runs it with the process's streams; tests run it in their own
 * process with captured ones (test/bin/cli-in-process.ts).
 */
import { AppError } from "../../server/shared/errors.js";
import type { Command } from "./common.js";
import type { CommandIo } from "./io.js";

/** The client commands, each imported when it runs. */
const CLIENTS: Record<string, () => Promise<Command>> = {
  run: async () => (await import("./run.js")).runCommand,
  host: async () => (await import("./inspect.js")).hostCommand,
  windows: async () => (await import("./inspect.js")).windowsCommand,
  watch: async () => (await import("./watch.js")).watchCommand,
  demo: async () => (await import("./demo.js")).demoCommand,
  token: async () => (await import("./token.js")).tokenCommand,
};

/** The client command for argv, with its name, if argv names one. */
async function clientCommand(name: string, rest: string[]): Promise<{ label: string; command: Command; argv: string[] } | undefined> {
  // "intensity" followed by a word may be a query; followed by an option, it is the service.
  if (name === "intensity" && rest[0] !== undefined && !rest[0].startsWith("-")) {
    const query = (await import("./intensity-query.js")).intensityQueryCommands[rest[0]];
    if (query) return { label: `intensity ${rest[0]}`, command: query, argv: rest.slice(1) };
  }
  if (name === "window") {
    const { WINDOW_HELP, windowCommands } = await import("./window.js");
    const action = rest[0] === undefined ? undefined : windowCommands[rest[0]];
    if (action) return { label: `window ${rest[0]}`, command: action, argv: rest.slice(1) };
    return { label: "window", command: { help: WINDOW_HELP, run: windowUsage(rest[0]) }, argv: rest };
  }
  return Object.hasOwn(CLIENTS, name) ? { label: name, command: await CLIENTS[name]!(), argv: rest } : undefined;
}

/** `carbonmon window` without begin/end/get/cancel. */
const windowUsage = (given: string | undefined) => async (): Promise<number> => {
  const { UsageError } = await import("./common.js");
  throw new UsageError(
    given === undefined
      ? "window needs begin, end, get or cancel"
      : `unknown window action ${JSON.stringify(given)}: begin, end, get or cancel`,
  );
};

/** Options before a "--" (what follows belongs to the command that `run` starts). */
const ownArgs = (argv: string[]): string[] => (argv.includes("--") ? argv.slice(0, argv.indexOf("--")) : argv);

async function runClient(label: string, command: Command, argv: string[], io: CommandIo): Promise<number> {
  if (ownArgs(argv).includes("--help")) return (void io.stdout.write(command.help), 0);
  const [{ CliError, UsageError }, { ConfigError }] = await Promise.all([import("./common.js"), import("../../server/shared/config.js")]);
  try {
    return await command.run(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`carbonmon ${label}: ${err.message} (see carbonmon ${label} --help)\n`);
      return 2;
    }
    if (err instanceof CliError) return (io.stderr.write(`${err.message}\n`), err.code);
    if (err instanceof ConfigError) return (io.stderr.write(`${err.message}\n`), 2);
    const hint = err instanceof AppError && err.hint ? ` (hint: ${err.hint})` : "";
    io.stderr.write(`carbonmon: ${(err as Error).message}${hint}\n`);
    return 1;
  }
}

/** Runs the client command argv names and resolves with its exit code; undefined when argv names none. */
export async function runClientCommand(argv: string[], io: CommandIo): Promise<number | undefined> {
  const [name, ...rest] = argv;
  const client = name === undefined ? undefined : await clientCommand(name, rest);
  return client && runClient(client.label, client.command, client.argv, io);
}
