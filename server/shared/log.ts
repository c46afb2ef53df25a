import { pino, type Logger as PinoLogger } from "pino";

export type Logger = PinoLogger;

/** Structured JSON logs on stderr, so that stdout stays free for command output. */
export function createLogger(name: string, level = "info"): Logger {
  return pino({ name, level, base: { service: name } }, pino.destination({ dest: 2, sync: false }));
}

/** A logger that drops everything, for tests and embedded use. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
