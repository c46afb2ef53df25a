/**
 * Runs a `carbonmon` client command in the test's own process: the CLI's dispatch (bin/commands/dispatch.ts)
 * and command code, its exit code, and what it wrote to stdout and stderr, captured. A CLI process costs
 * ~0.25 s of CPU to start (Node, gRPC, the generated code); in-process, a command costs what it does.
 * What only a process shows (the bin's wrapper, exit on a signal, separate processes sharing an agent, the
 * modules a command loads) is tested through real processes (cli-process.ts).
 */
import { runClientCommand } from "../../bin/commands/dispatch.js";
import type { Output } from "../../bin/commands/io.js";
import { CLI_TEST_ENV, type Finished } from "./cli-process.js";

class Capture implements Output {
  text = "";
  write(text: string): boolean {
    this.text += text;
    return true;
  }
}

/** `carbonmon …args` with CLI_TEST_ENV and `env` over this process's environment, as cli-process.ts gives its processes. */
export async function carbonmonHere(args: string[], env: Record<string, string> = {}): Promise<Finished> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runClientCommand(args, {
    stdout,
    stderr,
    env: { ...process.env, ...CLI_TEST_ENV, ...env },
  });
  if (code === undefined) throw new Error(`not a client command: carbonmon ${args.join(" ")}`);
  return { code, stdout: stdout.text, stderr: stderr.text };
}
