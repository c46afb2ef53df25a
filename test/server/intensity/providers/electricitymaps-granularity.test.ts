/**
 * ElectricityMaps sub-hourly data (temporalGranularity): the provider against the imitation server, and
 * ComputeEmissions through the real intensity service configured for 5-minute periods.
 */
import test, { type ExecutionContext } from "ava";
import {
  GapPolicy,
  type ComputeEmissionsRequest,
  type ComputeEmissionsResponse,
} from "../../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import type { Query } from "../../../../server/intensity/providers/provider.js";
import { ElectricityMapsProvider, type Granularity } from "../../../../server/intensity/providers/electricitymaps.js";
import { ManualClock } from "../../../../server/shared/clock.js";
import {
  FAKE_EM_TOKEN,
  seriesEvery,
  startFakeElectricityMaps,
  type EmPoint,
  type FakeElectricityMapsOptions,
} from "../../../helpers/fake-electricitymaps.js";
import { call, startTestIntensity } from "../../../helpers/grpc.js";

const MINUTE_MS = 60_000;
const FIVE_MIN_MS = 5 * MINUTE_MS;
const HOUR_MS = 3_600_000;
const ZONE = "DE";
const q: Query = { zone: ZONE, emissionFactor: "lifecycle", allowEstimated: true };
/** Values that differ from one 5-minute period to the next, so that a wrong period gives a wrong value. */
const valueAt = (i: number): number => 150 + ((i * 37) % 101);
const iso = (ms: number): string => new Date(ms).toISOString();

async function setup(t: ExecutionContext, nowMs: number, granularity: Granularity | undefined, options: FakeElectricityMapsOptions) {
  const clock = new ManualClock(nowMs);
  const em = await startFakeElectricityMaps({ nowMs: () => clock.nowMs(), ...options });
  t.teardown(() => em.close());
  const provider = new ElectricityMapsProvider({
    baseUrl: em.url,
    apiToken: FAKE_EM_TOKEN,
    clock,
    ...(granularity ? { granularity } : {}),
    http: { sleep: async () => {}, timeoutMs: 2000 },
  });
  return { em, clock, provider };
}

/** The mean of the values of the series' points starting in [fromMs, fromMs + lengthMs). */
function meanOver(series: readonly EmPoint[], fromMs: number, lengthMs: number): number {
  const values = series
    .filter((p) => Date.parse(p.datetime) >= fromMs && Date.parse(p.datetime) < fromMs + lengthMs)
    .map((p) => p.carbonIntensity!);
  return values.reduce((a, b) => a + b, 0) / values.length;
}

const NOW = Date.parse("2025-03-10T12:07:00Z");
/** 5-minute points from two days before NOW to one hour after it (the API's clock hides the future ones). */
const SERIES_FROM = Date.parse("2025-03-08T12:00:00Z");
const fiveMinuteSeries = (): EmPoint[] => seriesEvery(ZONE, SERIES_FROM, (49 * HOUR_MS) / FIVE_MIN_MS, FIVE_MIN_MS, valueAt);

test("5-minute history answers give 5-minute points with their own values, back to back", async (t) => {
  const series = fiveMinuteSeries();
  const { em, provider } = await setup(t, NOW, "5_minutes", { series: { [ZONE]: series } });
  const points = await provider.range(q, NOW - HOUR_MS, NOW);
  t.is(points.length, 13);
  t.is(iso(points[0]!.validFromMs), "2025-03-10T11:05:00.000Z");
  t.is(iso(points[12]!.validFromMs), "2025-03-10T12:05:00.000Z");
  for (const [i, p] of points.entries()) {
    t.is(p.validToMs - p.validFromMs, FIVE_MIN_MS);
    if (i > 0) t.is(p.validFromMs, points[i - 1]!.validToMs);
    t.is(p.gPerKwh, series.find((s) => Date.parse(s.datetime) === p.validFromMs)!.carbonIntensity!);
  }
  t.is(em.requests.length, 1);
  t.like(em.requests[0], { path: "/carbon-intensity/history", query: { zone: ZONE, temporalGranularity: "5_minutes" } });
});

test("15-minute answers give 15-minute points, from history and from past-range", async (t) => {
  const series = fiveMinuteSeries();
  const { em, provider } = await setup(t, NOW, "15_minutes", { series: { [ZONE]: series } });
  const recent = await provider.range(q, NOW - HOUR_MS, NOW);
  t.deepEqual(
    recent.map((p) => iso(p.validFromMs).slice(11, 16)),
    ["11:00", "11:15", "11:30", "11:45", "12:00"],
  );
  for (const p of recent) {
    t.is(p.validToMs - p.validFromMs, 15 * MINUTE_MS);
    t.is(p.gPerKwh, meanOver(series, p.validFromMs, 15 * MINUTE_MS));
  }
  const from = Date.parse("2025-03-09T03:20:00Z");
  const old = await provider.range(q, from, from + HOUR_MS);
  t.deepEqual(
    old.map((p) => iso(p.validFromMs).slice(11, 16)),
    ["03:15", "03:30", "03:45", "04:00", "04:15"],
  );
  for (const p of old) t.is(p.validToMs - p.validFromMs, 15 * MINUTE_MS);
  t.deepEqual(
    em.requests.map((r) => [r.path, r.query.temporalGranularity]),
    [
      ["/carbon-intensity/history", "15_minutes"],
      ["/carbon-intensity/past-range", "15_minutes"],
    ],
  );
  t.like(em.requests[1]!.query, { start: "2025-03-09T03:00:00.000Z", end: "2025-03-09T04:20:00.000Z" });
});

test("current() picks the 5-minute period that contains now, and the next one once the clock moves on", async (t) => {
  const series = fiveMinuteSeries();
  const { em, clock, provider } = await setup(t, NOW, "5_minutes", { series: { [ZONE]: series } });
  const first = await provider.current(q);
  t.is(iso(first.validFromMs), "2025-03-10T12:05:00.000Z");
  t.is(iso(first.validToMs), "2025-03-10T12:10:00.000Z");
  t.true(first.validFromMs <= NOW && NOW < first.validToMs);
  t.is(first.gPerKwh, series.find((s) => s.datetime === "2025-03-10T12:05:00.000Z")!.carbonIntensity!);
  clock.set(Date.parse("2025-03-10T12:13:30Z"));
  const second = await provider.current(q);
  t.deepEqual([iso(second.validFromMs), iso(second.validToMs)], ["2025-03-10T12:10:00.000Z", "2025-03-10T12:15:00.000Z"]);
  t.is(second.gPerKwh, series.find((s) => s.datetime === "2025-03-10T12:10:00.000Z")!.carbonIntensity!);
  t.deepEqual(
    em.requests.map((r) => [r.path, r.query.temporalGranularity]),
    [
      ["/carbon-intensity/latest", "5_minutes"],
      ["/carbon-intensity/latest", "5_minutes"],
    ],
  );
});

test("temporalGranularity is sent on latest, history and past-range only when configured other than hourly", async (t) => {
  const series = fiveMinuteSeries();
  const old = Date.parse("2025-03-09T03:00:00Z");
  for (const granularity of [undefined, "hourly", "5_minutes"] as const) {
    const { em, provider } = await setup(t, NOW, granularity, {
      series: { [ZONE]: series },
      locations: [{ lat: 52.5, lon: 13.4, zone: ZONE }],
    });
    await provider.current(q);
    await provider.range(q, NOW - HOUR_MS, NOW);
    await provider.range(q, old, old + HOUR_MS);
    await provider.forecast(q, 2 * HOUR_MS);
    await provider.resolve({ lat: 52.5, lon: 13.4 });
    const keys = em.requests.map((r) => [r.path.split("/")[2], Object.keys(r.query).join(",")]);
    const g = granularity === "5_minutes" ? ",temporalGranularity" : "";
    t.deepEqual(
      keys,
      [
        ["latest", `zone,emissionFactorType,disableEstimations${g}`],
        ["history", `zone,emissionFactorType,disableEstimations${g}`],
        ["past-range", `zone,emissionFactorType,disableEstimations${g},start,end`],
        ["forecast", "zone,emissionFactorType,horizonHours"],
        ["latest", "lat,lon,shouldUseFallbackCallerLookup"],
      ],
      String(granularity),
    );
    if (granularity === "5_minutes") for (const r of em.requests.slice(0, 3)) t.is(r.query.temporalGranularity, "5_minutes");
  }
});

test("a plan without 5-minute data answers hourly without saying so: the points are hourly", async (t) => {
  const series = fiveMinuteSeries();
  const { em, provider } = await setup(t, NOW, "5_minutes", { series: { [ZONE]: series }, supportedGranularities: ["hourly"] });
  const points = await provider.range(q, NOW - 3 * HOUR_MS, NOW);
  t.deepEqual(
    points.map((p) => iso(p.validFromMs).slice(11, 16)),
    ["09:00", "10:00", "11:00", "12:00"],
  );
  for (const p of points) {
    t.is(p.validToMs - p.validFromMs, HOUR_MS);
    t.is(p.gPerKwh, meanOver(series, p.validFromMs, HOUR_MS));
  }
  // /latest answers one point: the hour holding now, since the configured 5 minutes after 12:00 do not.
  const current = await provider.current(q);
  t.deepEqual([iso(current.validFromMs), iso(current.validToMs)], ["2025-03-10T12:00:00.000Z", "2025-03-10T13:00:00.000Z"]);
  t.deepEqual(
    em.requests.map((r) => r.query.temporalGranularity),
    ["5_minutes", "5_minutes"],
  );
});

test("past-range chunks stay within 240 h; a chunk with one coarsened point takes the length of the others", async (t) => {
  const now = Date.parse("2025-03-30T00:00:00Z");
  const start = Date.parse("2025-03-10T00:00:00Z");
  const series = seriesEvery(ZONE, start, (20 * 24 * HOUR_MS) / FIVE_MIN_MS, FIVE_MIN_MS, valueAt);
  const { em, provider } = await setup(t, now, "5_minutes", {
    series: { [ZONE]: series },
    supportedGranularities: ["hourly", "15_minutes"],
  });
  const from = Date.parse("2025-03-11T00:00:00Z");
  const to = from + 240 * HOUR_MS + MINUTE_MS;
  const points = await provider.range(q, from, to);
  t.deepEqual(
    em.requests.map((r) => [r.query.start, r.query.end]),
    [
      ["2025-03-11T00:00:00.000Z", "2025-03-21T00:00:00.000Z"],
      ["2025-03-21T00:00:00.000Z", "2025-03-21T00:01:00.000Z"],
    ],
  );
  t.is(points.length, 241);
  for (const p of points) t.is(p.validToMs - p.validFromMs, HOUR_MS);
  t.is(points[240]!.validFromMs, from + 240 * HOUR_MS);
});

test("a missing 5-minute point is a gap: its neighbours keep their 5-minute length", async (t) => {
  const missing = "2025-03-10T11:30:00.000Z";
  const series = fiveMinuteSeries().filter((p) => p.datetime !== missing);
  const { provider } = await setup(t, NOW, "5_minutes", { series: { [ZONE]: series } });
  const points = await provider.range(q, Date.parse("2025-03-10T11:15:00Z"), Date.parse("2025-03-10T11:45:00Z"));
  t.deepEqual(
    points.map((p) => iso(p.validFromMs).slice(11, 16)),
    ["11:15", "11:20", "11:25", "11:35", "11:40"],
  );
  for (const p of points) t.is(p.validToMs - p.validFromMs, FIVE_MIN_MS);
  t.false(points.some((p) => p.validFromMs <= Date.parse(missing) && Date.parse(missing) < p.validToMs));
});

test("ComputeEmissions with CARBONMON_ELECTRICITYMAPS_GRANULARITY=5_minutes splits energy at 5-minute boundaries", async (t) => {
  const now = Date.parse("2025-03-10T12:07:00Z");
  const clock = new ManualClock(now);
  const series = seriesEvery(ZONE, Date.parse("2025-03-10T06:00:00Z"), 74, FIVE_MIN_MS, valueAt); // 06:00 … 12:05
  const em = await startFakeElectricityMaps({ series: { [ZONE]: series }, nowMs: () => clock.nowMs() });
  const service = await startTestIntensity(
    {
      ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
      CARBONMON_ELECTRICITYMAPS_URL: em.url,
      CARBONMON_ELECTRICITYMAPS_GRANULARITY: "5_minutes",
      CARBONMON_PROVIDERS: "electricitymaps,offline",
    },
    { clock },
  );
  t.teardown(async () => {
    await service.close();
    await em.close();
  });
  const base = Date.parse("2025-03-10T09:00:00Z");
  const segments = [
    { startMs: base + 150_000, endMs: base + 1_050_000, energyJ: 9e5, device: "gpu:0" }, // 09:02:30–09:17:30
    { startMs: base + 1_201_000, endMs: base + 1_260_000, energyJ: 4.2e4, device: "gpu:1" }, // 09:20:01–09:21:00
    { startMs: base + 1_140_000, endMs: base + 1_560_000, energyJ: 7.3e5, device: "gpu:1" }, // 09:19:00–09:26:00
  ];
  const r = await call<ComputeEmissionsRequest, ComputeEmissionsResponse>(service.client, service.client.computeEmissions, {
    location: { zone: ZONE },
    emissionFactor: 0,
    gapPolicy: GapPolicy.GAP_POLICY_ERROR,
    provider: "",
    segments: segments.map((s) => ({ start: new Date(s.startMs), end: new Date(s.endMs), energyJ: s.energyJ, device: s.device })),
  });
  // Independently: each segment's energy spread evenly over its time, cut at every 5-minute start.
  const expectedG: Record<string, number> = {};
  const expectedJ = new Map<number, number>(); // by period start, all devices
  for (const s of segments) {
    for (let periodMs = Math.floor(s.startMs / FIVE_MIN_MS) * FIVE_MIN_MS; periodMs < s.endMs; periodMs += FIVE_MIN_MS) {
      const overlapMs = Math.min(s.endMs, periodMs + FIVE_MIN_MS) - Math.max(s.startMs, periodMs);
      const joules = (s.energyJ * overlapMs) / (s.endMs - s.startMs);
      const gPerKwh = series.find((p) => Date.parse(p.datetime) === periodMs)!.carbonIntensity!;
      expectedG[s.device] = (expectedG[s.device] ?? 0) + (joules * gPerKwh) / 3.6e6;
      expectedJ.set(periodMs, (expectedJ.get(periodMs) ?? 0) + joules);
    }
  }
  t.deepEqual(Object.keys(r.carbonG).sort(), ["gpu:0", "gpu:1"]);
  for (const [device, grams] of Object.entries(expectedG)) {
    t.true(Math.abs(r.carbonG[device]! - grams) <= 1e-9 * grams, `${device}: ${r.carbonG[device]} vs ${grams}`);
  }
  // Periods 09:00, 09:05, 09:10, 09:15 (gpu:0) and 09:15, 09:20, 09:25 (gpu:1): six distinct, 5 minutes each.
  t.deepEqual(
    r.periods.map((p) => iso(p.intensity!.validFrom!.getTime()).slice(11, 16)),
    ["09:00", "09:05", "09:10", "09:15", "09:20", "09:25"],
  );
  for (const p of r.periods) {
    const fromMs = p.intensity!.validFrom!.getTime();
    t.is(p.intensity!.validTo!.getTime() - fromMs, FIVE_MIN_MS);
    t.is(p.intensity!.provider, "electricitymaps");
    const joules = Object.values(p.energyJ).reduce((a, b) => a + b, 0);
    t.true(Math.abs(joules - expectedJ.get(fromMs)!) <= 1e-9 * expectedJ.get(fromMs)!, `${iso(fromMs)}: ${joules} J`);
  }
  t.true(em.requests.some((req) => req.path === "/carbon-intensity/history" && req.query.temporalGranularity === "5_minutes"));
});
