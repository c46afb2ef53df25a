import { createRequire } from "node:module";
import test from "ava";
import { ManualClock } from "../../../../server/shared/clock.js";
import { AppError, Code } from "../../../../server/shared/errors.js";
import type { Query } from "../../../../server/intensity/providers/provider.js";
import { OfflineProvider } from "../../../../server/intensity/providers/offline.js";

/** The package's own data, read independently of the provider (it ships no type declarations). */
interface Co2Data {
  electricityMaps: Record<string, { data: Record<string, { carbonIntensity: { value: number } }> }>;
  averageIntensity: { data: Record<string, number> };
}
const co2 = createRequire(import.meta.url)("@tgwf/co2/data") as Co2Data;
const emaps = (year: number, zone: string): number => co2.electricityMaps[`yearly${year}`]!.data[zone]!.carbonIntensity.value;
const YEARS = Object.keys(co2.electricityMaps).map((k) => Number(k.slice("yearly".length)));
const LATEST = Math.max(...YEARS);

const q = (zone: string, more: Partial<Query> = {}): Query => ({ zone, emissionFactor: "lifecycle", allowEstimated: true, ...more });
const jan1 = (year: number): number => Date.UTC(year, 0, 1);
const at = (iso: string) => new OfflineProvider({ clock: new ManualClock(Date.parse(iso)) });

test("the package holds Electricity Maps years 2021 to at least 2025", (t) => {
  t.true(YEARS.includes(2021) && LATEST >= 2025, String(YEARS));
});

test("DE: one point per calendar year overlapping the range, each from its own year", async (t) => {
  const points = await at("2026-03-01T00:00Z").range(q("DE"), Date.parse("2022-06-01T00:00Z"), Date.parse("2024-03-01T00:00Z"));
  t.deepEqual(
    points.map((p) => p.validFromMs),
    [jan1(2022), jan1(2023), jan1(2024)],
  );
  t.deepEqual(
    points.map((p) => p.validToMs),
    [jan1(2023), jan1(2024), jan1(2025)],
  );
  t.deepEqual(
    points.map((p) => p.gPerKwh),
    [emaps(2022, "DE"), emaps(2023, "DE"), emaps(2024, "DE")],
  );
  t.deepEqual(
    points.map((p) => p.estimationMethod),
    [2022, 2023, 2024].map((y) => `ANNUAL_AVERAGE ${y} (ElectricityMaps)`),
  );
  for (const p of points) {
    t.like(p, {
      zone: "DE",
      isEstimated: false,
      provider: "offline",
      signal: "average",
      source: "annual_average",
      emissionFactor: "lifecycle",
    });
  }
  t.is((await at("2026-03-01T00:00Z").range(q("DE"), jan1(2023), jan1(2024))).length, 1); // an exclusive end on Jan 1
});

test("FR: the current year's value; a year the data lacks gets the latest year, marked estimated", async (t) => {
  const p2024 = await at("2024-07-01T00:00Z").current(q("FR"));
  t.is(p2024.gPerKwh, emaps(2024, "FR"));
  t.false(p2024.isEstimated);
  const future = await at(`${LATEST + 3}-07-01T00:00Z`).current(q("FR"));
  t.is(future.gPerKwh, emaps(LATEST, "FR"));
  t.is(future.validFromMs, jan1(LATEST + 3));
  t.true(future.isEstimated);
  t.is(future.estimationMethod, `ANNUAL_AVERAGE ${LATEST} (ElectricityMaps)`);
  const err = await t.throwsAsync(at(`${LATEST + 3}-07-01T00:00Z`).current(q("FR", { allowEstimated: false })), { instanceOf: AppError });
  t.is(err?.code, Code.NotFound);
});

test("a sub-national zone has its own values", async (t) => {
  const p = await at("2023-07-01T00:00Z").current(q("US-MIDW-MISO"));
  t.is(p.gPerKwh, emaps(2023, "US-MIDW-MISO"));
  t.not(p.gPerKwh, emaps(2023, "US"));
  t.false(p.isEstimated);
  t.is(p.zone, "US-MIDW-MISO");
});

test("an unknown sub-zone falls back to its country's average, marked estimated", async (t) => {
  const provider = at("2023-07-01T00:00Z");
  t.true(provider.covers("US-XXX-UNKNOWN"));
  const p = await provider.current(q("US-XXX-UNKNOWN"));
  t.is(p.gPerKwh, emaps(2023, "US"));
  t.is(p.zone, "US-XXX-UNKNOWN");
  t.true(p.isEstimated);
  t.is(p.estimationMethod, "ANNUAL_AVERAGE 2023 (ElectricityMaps); country US standing in for US-XXX-UNKNOWN");
});

test("a country only Ember has answers from Ember's country average (year not shipped: 'latest')", async (t) => {
  t.is(co2.electricityMaps[`yearly${LATEST}`]!.data["UA"], undefined); // the premise: Electricity Maps lacks Ukraine
  const p = await at("2024-07-01T00:00Z").current(q("UA"));
  t.is(p.gPerKwh, co2.averageIntensity.data["UKR"]!);
  t.true(p.isEstimated);
  t.is(p.estimationMethod, "ANNUAL_AVERAGE latest (Ember)");
  t.is(p.emissionFactor, "lifecycle");
});

test("an unknown zone is not covered: NOT_FOUND", async (t) => {
  const provider = at("2024-07-01T00:00Z");
  for (const zone of ["XX", "ZZ-FOO", ""]) {
    t.false(provider.covers(zone));
    const err = await t.throwsAsync(provider.range(q(zone), jan1(2024), jan1(2025)), { instanceOf: AppError });
    t.is(err?.code, Code.NotFound);
  }
});

test("a query for direct emissions still answers, with lifecycle values labelled as such", async (t) => {
  const p = await at("2024-07-01T00:00Z").current(q("DE", { emissionFactor: "direct" }));
  t.is(p.emissionFactor, "lifecycle");
  t.is(p.gPerKwh, emaps(2024, "DE"));
  t.is(p.estimationMethod, "ANNUAL_AVERAGE 2024 (ElectricityMaps); lifecycle only, direct was requested");
});

test("range filters estimates when they are not allowed, and refuses absurd ranges", async (t) => {
  const provider = at("2024-07-01T00:00Z");
  const points = await provider.range(q("DE", { allowEstimated: false }), jan1(2020), jan1(LATEST + 2));
  t.deepEqual(
    points.map((p) => new Date(p.validFromMs).getUTCFullYear()),
    YEARS.sort(),
  );
  t.deepEqual(await provider.range(q("DE"), jan1(2024), jan1(2024)), []);
  const err = await t.throwsAsync(provider.range(q("DE"), -8e15, 8e15), { instanceOf: AppError });
  t.is(err?.code, Code.InvalidArgument);
});
