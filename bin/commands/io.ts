/**
 * What a client command writes to and reads its settings from: the process's own streams and environment
 * when `carbonmon` runs, or (tests) captured streams and a given environment, so that a command runs in the
 * caller's process with exactly the code the CLI runs. Signals and the processes a command starts stay the
 * process's own.
 */

/** A stream a command writes text to (process.stdout satisfies it). */
export interface Output {
  write(text: string): boolean;
  readonly isTTY?: boolean;
}

export interface CommandIo {
  readonly stdout: Output;
  readonly stderr: Output;
  readonly env: NodeJS.ProcessEnv;
}

/** The process's own streams and environment. */
export const processIo = (): CommandIo => ({ stdout: process.stdout, stderr: process.stderr, env: process.env });
