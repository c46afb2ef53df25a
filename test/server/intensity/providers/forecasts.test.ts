/**
 * Each provider's forecast endpoint, as GetBestWindow uses it (a 72 h horizon), against the imitation
 * servers: null points become gaps (never values), an answer shorter than asked is kept as it is, and the
 * provenance GetBestWindow reports (signal, source, when the forecast was issued) is on every point.
 */
import test from "ava";
import { ElectricityMapsProvider } from "../../../../server/intensity/providers/electricitymaps.js";
import type { Query } from "../../../../server/intensity/providers/provider.js";
import { UkGridProvider } from "../../../../server/intensity/providers/uk-grid.js";
import { WattTimeProvider } from "../../../../server/intensity/providers/watttime.js";
import { ManualClock } from "../../../../server/shared/clock.js";
import { lbsPerMwhToGPerKwh } from "../../../../server/shared/units.js";
import { FAKE_EM_TOKEN, hourlySeries, startFakeElectricityMaps } from "../../../helpers/fake-electricitymaps.js";
import { startFakeUkGrid } from "../../../helpers/fake-ukgrid.js";
import { FAKE_WT_PASSWORD, FAKE_WT_USERNAME, startFakeWattTime } from "../../../helpers/fake-watttime.js";

const MIN = 60_000;
const HOUR = 60 * MIN;
const HORIZON = 72 * HOUR;
/** 10:20 UTC: inside an hour and a half hour, on a 5-minute edge. */
const NOW = Date.parse("2026-12-03T10:20:00Z");
const HOUR_START = Date.parse("2026-12-03T10:00:00Z");
const noSleep = { sleep: async () => undefined, timeoutMs: 2000 };
const holes = (points: Array<{ validFromMs: number; validToMs: number }>): number[] =>
  points.flatMap((p, i) => (i > 0 && p.validFromMs !== points[i - 1]!.validToMs ? [points[i - 1]!.validToMs] : []));

test("ElectricityMaps: /carbon-intensity/forecast with horizonHours=72; null points are gaps; a shorter answer is kept", async (t) => {
  const forecast = hourlySeries("DE", HOUR_START, 10, (i) => (i === 4 ? null : 200 + i)).map((p) => ({
    carbonIntensity: p.carbonIntensity,
    datetime: p.datetime,
  }));
  const em = await startFakeElectricityMaps({
    series: { DE: hourlySeries("DE", HOUR_START - 24 * HOUR, 24) },
    forecasts: { DE: forecast },
  });
  t.teardown(() => em.close());
  const provider = new ElectricityMapsProvider({ baseUrl: em.url, apiToken: FAKE_EM_TOKEN, clock: new ManualClock(NOW), http: noSleep });
  const q: Query = { zone: "DE", emissionFactor: "lifecycle", allowEstimated: true };
  const points = await provider.forecast(q, HORIZON);
  t.like(em.requests[0], {
    path: "/carbon-intensity/forecast",
    query: { zone: "DE", horizonHours: "72", emissionFactorType: "lifecycle" },
  });
  t.is(points.length, 9, "10 hours answered, one of them null: the answer is shorter than asked, and says so by ending");
  t.deepEqual(holes(points), [HOUR_START + 4 * HOUR]);
  t.is(points.at(-1)!.validToMs, HOUR_START + 10 * HOUR);
  t.true(points.every((p) => p.source === "forecast" && p.signal === "average" && p.validToMs - p.validFromMs === HOUR));
  t.is(points[0]!.sourceUpdatedAtMs, HOUR_START - HOUR, "issued: the answer's updatedAt");
  em.setFault("/carbon-intensity/forecast", { nullIntensity: true, times: 1 });
  t.deepEqual(await provider.forecast(q, HORIZON), [], "all null: nothing, not zeros");
});

test("WattTime: /v3/forecast with horizon_hours=72 gives 5-minute marginal points; nulls are gaps; a shorter answer is kept", async (t) => {
  const clock = new ManualClock(NOW);
  const nullAt = Date.parse("2026-12-03T11:00:00Z");
  const wt = await startFakeWattTime({
    nowMs: () => clock.nowMs(),
    forecastMaxHours: 6,
    value: (_r, ms) => (ms === nullAt ? null : 1000 + (ms - NOW) / MIN),
  });
  t.teardown(() => wt.close());
  const provider = new WattTimeProvider({ baseUrl: wt.url, username: FAKE_WT_USERNAME, password: FAKE_WT_PASSWORD, clock, http: noSleep });
  const points = await provider.forecast({ zone: "CAISO_NORTH", emissionFactor: "lifecycle", allowEstimated: true }, HORIZON);
  t.like(
    wt.requests.find((r) => r.path === "/v3/forecast"),
    { query: { region: "CAISO_NORTH", signal_type: "co2_moer", horizon_hours: "72" } },
  );
  t.is(points.length, 6 * 12 - 1, "6 hours of 5-minute points, less the null one");
  t.deepEqual(holes(points), [nullAt]);
  t.true(
    points.every(
      (p) => p.signal === "marginal" && p.emissionFactor === "direct" && p.source === "forecast" && p.validToMs - p.validFromMs === 5 * MIN,
    ),
  );
  t.is(points[0]!.validFromMs, Date.parse("2026-12-03T10:20:00Z"));
  t.is(points[1]!.gPerKwh, lbsPerMwhToGPerKwh(1005));
  t.is(points[0]!.sourceUpdatedAtMs, NOW, "issued: meta.generated_at");
});

test("UK grid: /intensity/{from}/fw48h; periods with neither forecast nor actual are gaps; a shorter answer is kept", async (t) => {
  const clock = new ManualClock(NOW);
  const gapAt = Date.parse("2026-12-03T12:00:00Z");
  const endAt = Date.parse("2026-12-04T10:00:00Z"); // 24 h instead of 48 h
  const uk = await startFakeUkGrid({
    nowMs: () => clock.nowMs(),
    series: (startMs) =>
      startMs >= endAt
        ? undefined
        : startMs === gapAt
          ? { forecast: null, actual: null }
          : { forecast: 150 + (((startMs - HOUR_START) / (30 * MIN)) % 5), actual: null },
  });
  t.teardown(() => uk.close());
  const provider = new UkGridProvider({ baseUrl: uk.url, clock, http: noSleep });
  const points = await provider.forecast({ zone: "GB", emissionFactor: "lifecycle", allowEstimated: true }, HORIZON);
  t.is(uk.requests[0]!.path, "/intensity/2026-12-03T10:20Z/fw48h");
  t.is(points.length, 48 - 1);
  t.deepEqual(holes(points), [gapAt]);
  t.is(points[0]!.validFromMs, HOUR_START, "the half hour containing now comes first");
  t.is(points.at(-1)!.validToMs, endAt);
  t.deepEqual([...new Set(points.slice(1).map((p) => p.source))], ["forecast"]);
  t.true(points.every((p) => p.signal === "average" && p.emissionFactor === "direct" && p.validToMs - p.validFromMs === 30 * MIN));
});
