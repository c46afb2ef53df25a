/** Tokens files and a log that tests can read, for the security tests. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import type { Logger } from "../../server/shared/log.js";
import { newToken, sha256Hex } from "../../server/shared/security/tokens.js";

/** Writes CARBONMON_AUTH_TOKENS_FILE for these principals; returns its path and each principal's token. */
export function writeTokens(
  dir: string,
  principals: Record<string, string[]>,
  file = "tokens.json",
): { file: string; token: Record<string, string> } {
  const token: Record<string, string> = {};
  const tokens = Object.entries(principals).map(([name, scopes]) => {
    token[name] = newToken();
    return { name, sha256: sha256Hex(token[name]!), scopes };
  });
  const path = join(dir, file);
  writeFileSync(path, JSON.stringify({ tokens }));
  return { file: path, token };
}

/** A logger whose lines (parsed JSON) collect in `lines`, and their raw text in `text()`. */
export function capturingLogger(level = "trace"): { log: Logger; lines: Array<Record<string, unknown>>; text: () => string } {
  const raw: string[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  return { log: pino({ level }, sink), lines, text: () => raw.join("\n") };
}
