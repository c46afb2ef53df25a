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
  t.true(readFileSync(new URL("../.ci/run", import.meta.url), "utf8").includes("npm test -- --tap"));
});
