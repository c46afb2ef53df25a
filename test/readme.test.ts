import { readFileSync } from "node:fs";
import test from "ava";
import { SETTINGS } from "../server/shared/config.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

test("the README's configuration table lists every setting with its flag and default", (t) => {
  for (const s of SETTINGS) {
    const row = readme.split("\n").find((line) => line.startsWith(`| \`${s.env}\` |`));
    t.truthy(row, `${s.env} is missing from the README`);
    t.true(row!.includes(`\`${s.flag}\``), `${s.env}: flag ${s.flag}`);
    if ("default" in s) t.true(row!.includes(`\`${s.default}\``), `${s.env}: default ${s.default}`);
  }
});

test("the README's quick start is two commands and names the test command CI runs", (t) => {
  const quick = /## Quick start\n\n```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const commands = quick.split("\n").filter((l) => l.trim() !== "");
  t.is(commands.length, 2);
  t.true(commands[1]!.startsWith("npm test"));
  t.true(readFileSync(new URL("../.ci/run", import.meta.url), "utf8").includes("tier unit npm test --"));
});

test("the README's worked carbon example adds up: energy per period x intensity = grams", (t) => {
  const example = /\*\*Worked example\.\*\*[\s\S]*?\n\n(\|[\s\S]*?)\n\n/.exec(readme)?.[1] ?? "";
  const num = (text: string): number => Number(text.replace(/,/g, ""));
  const rows = example.split("\n").filter((l) => /^\| \d\d:\d\d–/.test(l));
  t.is(rows.length, 2);
  let totalJ = 0;
  let totalG = 0;
  for (const row of rows) {
    const cells = row.split("|").map((c) => c.trim());
    const joules = num(/^([\d,]+) J/.exec(cells[2]!)![1]!);
    const gPerKwh = num(/^(\d+) g\/kWh/.exec(cells[3]!)![1]!);
    const grams = num(/= ([\d.]+) g$/.exec(cells[4]!)![1]!);
    t.is(grams, Number(((joules / 3.6e6) * gPerKwh).toFixed(3)));
    totalJ += joules;
    totalG += (joules / 3.6e6) * gPerKwh;
  }
  const window = example
    .split("\n")
    .find((l) => l.startsWith("| window"))!
    .split("|")
    .map((c) => c.trim());
  t.is(num(/^([\d,]+) J/.exec(window[2]!)![1]!), totalJ);
  t.is(num(/^([\d.]+) g/.exec(window[4]!)![1]!), Number(totalG.toFixed(3)));
});
