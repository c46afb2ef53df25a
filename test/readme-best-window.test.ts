/**
 * The README's "Best time and place to run a job": the worked example's numbers against the real search
 * (server/intensity/core/best-window.ts) and an independent whole-point average, and its TypeScript example
 * run as it is against a real intensity service with constants (DE 300, FR 56, GB 200 g/kWh).
 */
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import test from "ava";
import { prepareSeries, windowMean } from "../server/intensity/core/best-window.js";
import { rankWindows } from "../server/intensity/core/rank-windows.js";
import { runExample } from "./helpers/examples.js";
import { startTestIntensity } from "./helpers/grpc.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const readme = readFileSync(join(ROOT, "README.md"), "utf8");
const section = readme.slice(readme.indexOf("### Best time and place to run a job"), readme.indexOf("**Data credits.**"));
const MIN = 60_000;
const T0 = Date.UTC(2026, 11, 3);
const clock = (hhmm: string): number => T0 + Number(hhmm.slice(0, 2)) * 60 * MIN + Number(hhmm.slice(3)) * MIN;
const cells = (line: string): string[] =>
  line
    .split("|")
    .slice(1, -1)
    .map((c) => c.trim());
const num = (text: string): number => Number(text.replace(/,/g, ""));

/** "(60 × 180 + 30 × 90) / 90 = 150 g/kWh" → [the expression's value, the stated result]. */
function arithmetic(text: string): [number, number] {
  const m = /^(.*) = ([\d.,]+) g\/kWh$/.exec(text)!;
  const value = Function(`return ${m[1]!.replace(/×/g, "*")}`)() as number;
  return [value, num(m[2]!)];
}

test("the worked example: whole-point averaging and the exact search give the README's starts, means and grams", (t) => {
  t.regex(section, /\*\*Example: a 90-minute job on hourly data\.\*\*/);
  const lines = section.split("\n");
  const hours = cells(lines.find((l) => l.startsWith("| hour (UTC)"))!).slice(1);
  const values = cells(lines.find((l) => l.startsWith("| g/kWh"))!)
    .slice(1)
    .map(num);
  t.is(hours.length, values.length);
  const periods = hours.map((h, i) => ({ startMs: clock(h), endMs: clock(h) + 60 * MIN, gPerKwh: values[i]! }));
  const endMs = periods.at(-1)!.endMs;
  const durationMs = 90 * MIN;
  const kwh = num(/grams for ([\d.]+) kWh/.exec(section)![1]!);

  // Whole points: starts on points only, a window's mean the plain average of the points it touches.
  const wholePoint = periods
    .filter((p) => p.startMs + durationMs <= endMs)
    .map((p) => {
      const touched = periods.filter((q) => q.startMs >= p.startMs && q.startMs < p.startMs + durationMs);
      return { startMs: p.startMs, claimed: touched.reduce((s, q) => s + q.gPerKwh, 0) / touched.length };
    })
    .sort((a, b) => a.claimed - b.claimed)[0]!;
  const series = prepareSeries(periods);
  const [exact] = rankWindows([series], { fromMs: periods[0]!.startMs, toMs: endMs, durationMs }, 1);

  const row = (name: string): string[] => cells(section.split("\n").find((l) => l.startsWith(`| ${name} |`))!);
  const [, wholeStart, wholeClaim, wholeReal, wholeGrams] = row("whole points");
  const [, exactStart, exactClaim, exactReal, exactGrams] = row("exact overlap");
  for (const text of [wholeClaim!, wholeReal!, exactClaim!]) {
    const [value, stated] = arithmetic(text);
    t.true(Math.abs(value - stated) < 1e-9, text);
  }
  t.is(clock(wholeStart!), wholePoint.startMs);
  t.is(arithmetic(wholeClaim!)[1], wholePoint.claimed);
  t.is(arithmetic(wholeReal!)[1], windowMean(series, wholePoint.startMs, durationMs)!);
  t.is(num(/^([\d,]+) g$/.exec(wholeGrams!)![1]!), kwh * windowMean(series, wholePoint.startMs, durationMs)!);
  t.is(clock(exactStart!), exact!.startMs);
  t.is(arithmetic(exactClaim!)[1], exact!.meanGPerKwh);
  t.is(num(/^([\d.]+) g\/kWh$/.exec(exactReal!)![1]!), windowMean(series, exact!.startMs, durationMs)!);
  t.is(num(/^([\d,]+) g$/.exec(exactGrams!)![1]!), kwh * exact!.meanGPerKwh);
  const real = windowMean(series, wholePoint.startMs, durationMs)!;
  const [, percent, grams] = /emits at 120 g\/kWh: (\d+) % less, (\d+) g on a/.exec(section.replace(/\s+/g, " "))!;
  t.is(Number(percent), Math.round((1 - exact!.meanGPerKwh / real) * 100));
  t.is(Number(grams), kwh * (real - exact!.meanGPerKwh));
});

test("the TypeScript example runs against a real service and prints the best window, then starting now per location", async (t) => {
  const code = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  t.is(code.length, 1);
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300,FR=56,GB=200" });
  const dir = join(ROOT, ".tmp", `readme-best-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  t.teardown(async () => (await intensity.close(), rmSync(dir, { recursive: true, force: true })));
  const stdout = await runExample(code[0]!, join(dir, "example"), {
    cwd: ROOT,
    env: { ...process.env, CARBONMON_INTENSITY: intensity.running.address },
    timeout: 30_000,
  });
  const lines = stdout
    .trim()
    .split("\n")
    .map((l) => l.split(" "));
  t.deepEqual(
    lines.map(([zone, , mean, , grams]) => [zone, mean, grams]),
    [
      ["FR", "56", "672"],
      ["DE", "300", "3600"],
      ["FR", "56", "672"],
      ["GB", "200", "2400"],
    ],
  );
  t.true(
    lines.every((l) => l[1] === lines[0]![1]),
    "every window starts now",
  );
  t.regex(code[0]!, /\/\/ FR \S+ 56 g\/kWh 672 g/);
});
