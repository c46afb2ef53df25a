/** `carbonmon intensity best` (in this process: cli-in-process.ts) against the intensity service and an imitation ElectricityMaps. */
import test from "ava";
import { parseDurationMs } from "../../bin/commands/intensity-best.js";
import { FAKE_EM_TOKEN, hourlySeries, startFakeElectricityMaps } from "../helpers/fake-electricitymaps.js";
import { startTestIntensity } from "../helpers/grpc.js";
import { carbonmonHere } from "./cli-in-process.js";

const HOUR = 3_600_000;
const hhmm = (ms: number): string => new Date(ms).toISOString().slice(11, 16);

async function setup(t: import("ava").ExecutionContext) {
  const hour = Math.floor(Date.now() / HOUR) * HOUR;
  // DE from this hour: 300, except 120, 180, 90, 400 three to six hours on (the README's example); GB a constant 250.
  const values: Record<number, number> = { 3: 120, 4: 180, 5: 90, 6: 400 };
  const forecast = hourlySeries("DE", hour, 24, (i) => values[i] ?? 300).map((p) => ({
    carbonIntensity: p.carbonIntensity,
    datetime: p.datetime,
  }));
  const em = await startFakeElectricityMaps({ series: { DE: hourlySeries("DE", hour - 24 * HOUR, 24) }, forecasts: { DE: forecast } });
  const service = await startTestIntensity({
    ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
    CARBONMON_PROVIDERS: "electricitymaps,static",
    CARBONMON_INTENSITY_CONSTANTS: "GB=250",
  });
  t.teardown(async () => (await service.close(), await em.close()));
  return { hour, addr: service.running.address };
}

test("intensity best: a table of windows with grams and the saving against starting now; --json", async (t) => {
  const { hour, addr } = await setup(t);
  const r = await carbonmonHere([
    "intensity",
    "best",
    "--locations",
    "DE,GB",
    "--duration",
    "90m",
    "--energy-kwh",
    "9",
    "--max",
    "2",
    "--addr",
    addr,
  ]);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  t.regex(lines[1]!, /^#\s+zone\s+start \(UTC\)\s+end \(UTC\)\s+gCO2eq\/kWh\s+gCO2eq\s+vs now\s+series$/);
  t.regex(
    lines[2]!,
    new RegExp(
      `^1\\s+DE\\s+\\S+ ${hhmm(hour + 4.5 * HOUR)}\\s+\\S+ ${hhmm(hour + 6 * HOUR)}\\s+120\\.0\\s+1080\\.0\\s+-60\\.0 %\\s+electricitymaps forecast$`,
    ),
  );
  t.regex(lines[3]!, /^2\s+DE\s+.*140\.0\s+1260\.0\s+-53\.3 %/);
  t.regex(r.stdout, /^now\s+DE\s+.*300\.0\s+2700\.0\s+0\.0 %\s+electricitymaps forecast$/m);
  t.regex(r.stdout, /^now\s+GB\s+.*250\.0\s+2250\.0\s+0\.0 %\s+static flat \(no forecast\)$/m);
  t.regex(r.stdout, /^note: GB: static has no forecast; its configured constant is flat, so starting later changes nothing there$/m);
  const j = await carbonmonHere([
    "intensity",
    "best",
    "--locations",
    "DE",
    "--location",
    "GB",
    "--duration",
    "1h30m",
    "--within",
    "12h",
    "--json",
    "--addr",
    addr,
  ]);
  t.is(j.code, 0, j.stderr);
  // Canonical protobuf JSON: a field left unset (no energy asked for, so no grams) is absent, never null.
  const body = JSON.parse(j.stdout) as { candidates: Array<{ zone: string; meanGPerKwh: number; carbonG?: number }>; latestEnd: string };
  t.deepEqual([body.candidates[0]!.zone, body.candidates[0]!.meanGPerKwh, "carbonG" in body.candidates[0]!], ["DE", 120, false]);
  t.true(Math.abs(Date.parse(body.latestEnd) - (Date.now() + 12 * HOUR)) < 60_000);
});

test("intensity best: usage errors exit 2; a range shorter than the duration is the service's INVALID_ARGUMENT, exit 1", async (t) => {
  const { addr } = await setup(t);
  for (const args of [
    ["--duration", "2h"],
    ["--locations", "DE"],
    ["--locations", "DE", "--duration", "2 hours"],
    ["--locations", "DE", "--duration", "2h", "--energy-kwh", "-1"],
  ]) {
    const r = await carbonmonHere(["intensity", "best", ...args, "--addr", addr]);
    t.is(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    t.regex(r.stderr, /^carbonmon intensity best: .* \(see carbonmon intensity best --help\)\n$/);
  }
  const short = await carbonmonHere(["intensity", "best", "--locations", "DE", "--duration", "2h", "--within", "1h", "--addr", addr]);
  t.is(short.code, 1);
  t.regex(short.stderr, /INVALID_ARGUMENT: .* is shorter than the duration \(2 h\)/);
  const help = await carbonmonHere(["intensity", "best", "--help"]);
  t.regex(help.stdout, /--duration D/);
});

test("parseDurationMs reads 2h, 90m, 1h30m, 45s and refuses the rest", (t) => {
  t.is(parseDurationMs("--duration", "2h"), 2 * HOUR);
  t.is(parseDurationMs("--duration", "90m"), 1.5 * HOUR);
  t.is(parseDurationMs("--duration", "1h30m"), 1.5 * HOUR);
  t.is(parseDurationMs("--duration", "45s"), 45_000);
  t.is(parseDurationMs("--duration", undefined), undefined);
  for (const bad of ["", "2", "h", "2 h", "0h", "1h-5m"]) t.throws(() => parseDurationMs("--duration", bad), undefined, bad);
});
