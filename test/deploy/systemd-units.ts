/** Reading deploy/systemd's unit files: sections of key=value lines, repeated keys kept in order. */
import { readFileSync } from "node:fs";

export const SYSTEMD_DIR = new URL("../../deploy/systemd/", import.meta.url);
export const read = (name: string): string => readFileSync(new URL(name, SYSTEMD_DIR), "utf8");

export function parseUnit(text: string): Record<string, Array<[string, string]>> {
  const sections: Record<string, Array<[string, string]>> = {};
  let current: Array<[string, string]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = sections[header[1]!] ??= [];
      continue;
    }
    const eq = line.indexOf("=");
    current!.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return sections;
}
