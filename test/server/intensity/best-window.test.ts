/**
 * GetBestWindow end to end: real gRPC on 127.0.0.1, the real intensity service with a manual clock, real
 * HTTP to the imitation ElectricityMaps, UK grid and WattTime servers.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import test, { type ExecutionContext } from "ava";
import {
  IntensitySource,
  SignalType,
  type BestWindowRequest,
  type BestWindowResponse,
} from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { prepareSeries } from "../../../server/intensity/core/best-window.js";
import { rankWindows } from "../../../server/intensity/core/rank-windows.js";
import { ManualClock } from "../../../server/shared/clock.js";
import { durationFromMs } from "../../../server/shared/proto-time.js";
import { lbsPerMwhToGPerKwh } from "../../../server/shared/units.js";
import { FAKE_EM_TOKEN, hourlySeries, startFakeElectricityMaps, type EmForecastPoint } from "../../helpers/fake-electricitymaps.js";
import { startFakeUkGrid, type FakeSeries } from "../../helpers/fake-ukgrid.js";
import { FAKE_WT_PASSWORD, FAKE_WT_USERNAME, startFakeWattTime } from "../../helpers/fake-watttime.js";
import { call, startTestIntensity, type TestIntensity } from "../../helpers/grpc.js";

const MIN = 60_000;
const HOUR = 60 * MIN;
const NOW = Date.parse("2026-12-03T10:20:00Z");
const H10 = Date.parse("2026-12-03T10:00:00Z");
const at = (hhmm: string, day = 3): number => Date.parse(`2026-12-0${day}T${hhmm}:00Z`);
const KWH = 3.6e6;

/** Hourly forecast points from 10:00: `values` first, then `rest` up to `hours` points. */
function forecast(hours: number, values: Record<number, number | null>, rest: number): EmForecastPoint[] {
  return hourlySeries("X", H10, hours, (i) => (i in values ? values[i]! : rest)).map((p) => ({
    carbonIntensity: p.carbonIntensity,
    datetime: p.datetime,
  }));
}

/** DE: the README's shape from 13:00 (120, 180, 90, 400), 18:00 null; FR: a flat 200; GB (UK grid): 125 from 22:00 to 23:30, else 250. */
const DE = forecast(24, { 3: 120, 4: 180, 5: 90, 6: 400, 8: null }, 300);
const FR = forecast(24, {}, 200);
const GB: FakeSeries = (startMs) => ({ forecast: startMs >= at("22:00") && startMs < at("23:30") ? 125 : 250, actual: null });

interface Options {
  de?: EmForecastPoint[];
  fr?: EmForecastPoint[];
  gb?: FakeSeries;
  env?: Record<string, string>;
  watttime?: boolean;
}

async function setup(t: ExecutionContext, o: Options = {}) {
  const clock = new ManualClock(NOW);
  const history = (zone: string) => hourlySeries(zone, H10 - 24 * HOUR, 24);
  const em = await startFakeElectricityMaps({
    series: { DE: history("DE"), FR: history("FR") },
    forecasts: { DE: o.de ?? DE, FR: o.fr ?? FR },
  });
  const uk = await startFakeUkGrid({ nowMs: () => clock.nowMs(), series: o.gb ?? GB });
  const wt = await startFakeWattTime({
    nowMs: () => clock.nowMs(),
    value: (_r, ms) => (ms >= at("12:00") && ms < at("12:05") ? null : 500 + (((ms - NOW) / (5 * MIN)) % 13)),
  });
  const env: Record<string, string> = {
    ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
    CARBONMON_UKGRID_URL: uk.url,
    CARBONMON_IPINFO_URL: "http://127.0.0.1:9/json",
    ...(o.watttime ? { WATTTIME_USERNAME: FAKE_WT_USERNAME, WATTTIME_PASSWORD: FAKE_WT_PASSWORD, CARBONMON_WATTTIME_URL: wt.url } : {}),
    ...o.env,
  };
  const service = await startTestIntensity(env, { clock });
  t.teardown(async () => {
    await service.close();
    await Promise.all([em.close(), uk.close(), wt.close()]);
  });
  return { clock, em, uk, wt, service };
}

function ask(
  service: TestIntensity,
  zones: string[],
  durationMs: number,
  extra: Partial<BestWindowRequest> = {},
): Promise<BestWindowResponse> {
  return call<BestWindowRequest, BestWindowResponse>(service.client, service.client.getBestWindow, {
    locations: zones.map((zone) => ({ zone })),
    duration: durationFromMs(durationMs),
    emissionFactor: 0,
    maxCandidates: 0,
    provider: "",
    ...extra,
  });
}

async function fails(t: ExecutionContext, p: Promise<unknown>, code: status): Promise<ServiceError> {
  const err = (await t.throwsAsync(p)) as ServiceError;
  t.is(err.code, code, err.details);
  return err;
}

const row = (w: BestWindowResponse["candidates"][number]) => [
  w.zone,
  w.start!.toISOString().slice(11, 16),
  w.end!.toISOString().slice(11, 16),
  +w.meanGPerKwh.toFixed(9),
];

test("DE, FR and GB: ranked exact windows (half-hour starts on hourly data), never across a null, with run-now figures and grams", async (t) => {
  const { service } = await setup(t);
  const r = await ask(service, ["DE", "FR", "GB"], 90 * MIN, { energyJ: 9 * KWH, maxCandidates: 3 });
  t.deepEqual(r.candidates.map(row), [
    ["DE", "14:30", "16:00", 120],
    ["GB", "22:00", "23:30", 125],
    ["DE", "13:00", "14:30", 140],
  ]);
  t.deepEqual(
    r.candidates.map((c) => c.carbonG),
    [9 * 120, 9 * 125, 9 * 140],
  );
  t.deepEqual(r.runNow.map(row), [
    ["DE", "10:20", "11:50", 300],
    ["FR", "10:20", "11:50", 200],
    ["GB", "10:20", "11:50", 250],
  ]);
  t.deepEqual(
    r.runNow.map((c) => c.location?.zone),
    ["DE", "FR", "GB"],
  );
  t.is(r.earliestStart!.getTime(), NOW);
  t.is(
    r.latestEnd!.getTime(),
    H10 + 24 * HOUR,
    "default: the end of the shortest forecast (ElectricityMaps' 24 h, not the UK grid's 48 h)",
  );
  const de = r.candidates[0]!;
  t.like(de, {
    provider: "electricitymaps",
    signal: SignalType.SIGNAL_TYPE_AVERAGE,
    source: IntensitySource.INTENSITY_SOURCE_FORECAST,
    isForecast: true,
  });
  t.is(de.issuedAt!.getTime(), H10 - HOUR, "the forecast's updatedAt");
  t.is(de.fetchedAt!.getTime(), NOW);
  t.deepEqual(
    de.attempts.map((a) => [a.provider, a.code]),
    [["electricitymaps", "OK"]],
  );
  t.like(r.candidates[1], { provider: "ukgrid", isForecast: true });
  t.deepEqual(r.notes, []);
  // All of DE's windows, best first: none overlaps 18:00-19:00, the null hour.
  const all = await ask(service, ["DE"], 90 * MIN, { maxCandidates: 100 });
  t.true(all.candidates.length > 5);
  t.false(all.candidates.some((c) => c.start!.getTime() < at("19:00") && c.end!.getTime() > at("18:00")));
  t.true(all.candidates.every((c, i) => i === 0 || c.meanGPerKwh >= all.candidates[i - 1]!.meanGPerKwh));
});

test("a repeated question is answered from the cache: no new forecast calls upstream", async (t) => {
  const { em, uk, service } = await setup(t);
  const first = await ask(service, ["DE", "GB"], 2 * HOUR);
  const calls = () => [em.requests.filter((x) => x.path === "/carbon-intensity/forecast").length, uk.requests.length];
  t.deepEqual(calls(), [2, 1], "GB: ElectricityMaps first (it has no GB), then the UK grid");
  const again = await Promise.all(Array.from({ length: 20 }, () => ask(service, ["DE", "GB"], 2 * HOUR)));
  t.deepEqual(calls(), [2, 1]);
  t.true(again.every((a) => JSON.stringify(a.candidates.map(row)) === JSON.stringify(first.candidates.map(row))));
});

test("a forecast shorter than the others bounds the default range; past it, that location simply has fewer windows", async (t) => {
  const { service } = await setup(t, { fr: forecast(4, {}, 50) }); // FR: 10:00-14:00 only
  const r = await ask(service, ["DE", "FR"], 90 * MIN);
  t.is(r.latestEnd!.getTime(), at("14:00"));
  t.deepEqual(r.candidates.map(row).slice(0, 2), [
    ["FR", "10:20", "11:50", 50],
    ["FR", "11:50", "13:20", 50],
  ]);
  t.true(r.candidates.every((c) => c.end!.getTime() <= at("14:00")));
  const later = await ask(service, ["DE", "FR"], 90 * MIN, { latestEnd: new Date(at("20:00")) });
  t.deepEqual(later.candidates.map(row), [
    ["FR", "10:20", "11:50", 50],
    ["FR", "11:50", "13:20", 50],
    ["DE", "14:30", "16:00", 120],
    ["DE", "13:00", "14:30", 140],
    ["DE", "10:20", "11:50", 300], // before 13:00 every DE window is 300: the earliest
  ]);
  t.is(later.latestEnd!.getTime(), at("20:00"));
});

test("failover: a provider that refuses the forecast gives way to the next; a zone without forecasts gets a flat series that says so", async (t) => {
  const { em, service } = await setup(t, { watttime: true });
  em.setFault("/carbon-intensity/forecast", { status: 403, body: { error: "Forecast not in plan" } });
  const r = await ask(service, ["DE", "CAISO_NORTH"], HOUR);
  const best = r.candidates.find((c) => c.zone === "CAISO_NORTH");
  t.like(best, { zone: "CAISO_NORTH", provider: "watttime", signal: SignalType.SIGNAL_TYPE_MARGINAL, isForecast: true });
  t.deepEqual(
    best!.attempts.map((a) => [a.provider, a.code]),
    [
      ["electricitymaps", "PERMISSION_DENIED"],
      ["watttime", "OK"],
    ],
  );
  const de = r.runNow.find((w) => w.zone === "DE")!;
  t.like(de, { provider: "offline", isForecast: false, source: IntensitySource.INTENSITY_SOURCE_ANNUAL_AVERAGE });
  t.deepEqual(
    de.attempts.map((a) => [a.provider, a.code]),
    [
      ["electricitymaps", "PERMISSION_DENIED"],
      ["watttime", "FAILED_PRECONDITION"],
      ["ukgrid", "FAILED_PRECONDITION"],
      ["static", "FAILED_PRECONDITION"],
      ["offline", "OK"],
    ],
  );
  t.regex(r.notes.join("\n"), /DE: offline has no forecast; its annual average is flat, so starting later changes nothing there/);
  t.is(r.latestEnd!.getTime(), NOW + 72 * HOUR, "the default range ends with WattTime's 72 h; the flat series does not bound it");
});

test("WattTime's 5-minute marginal forecast: the answer equals the pure search on the same numbers, and skips the null point", async (t) => {
  const { wt, service } = await setup(t, { watttime: true });
  const r = await ask(service, ["CAISO_NORTH"], 25 * MIN, { maxCandidates: 4 });
  const periods = Array.from({ length: 72 * 12 }, (_, i) => NOW + i * 5 * MIN).map((ms) => ({
    startMs: ms,
    endMs: ms + 5 * MIN,
    gPerKwh: ms >= at("12:00") && ms < at("12:05") ? null : lbsPerMwhToGPerKwh(500 + (((ms - NOW) / (5 * MIN)) % 13)),
  }));
  const expected = rankWindows([prepareSeries(periods)], { fromMs: NOW, toMs: NOW + 72 * HOUR, durationMs: 25 * MIN }, 4);
  t.deepEqual(
    r.candidates.map((c) => [c.start!.getTime(), c.meanGPerKwh]),
    expected.map((w) => [w.startMs, w.meanGPerKwh]),
  );
  t.false(r.candidates.some((c) => c.start!.getTime() < at("12:05") && c.end!.getTime() > at("12:00")));
  t.like(
    wt.requests.find((x) => x.path === "/v3/forecast"),
    { query: { horizon_hours: "72" } },
  );
});

test("an air-gapped site with one constant: an answer that says it cannot shift anything", async (t) => {
  const { service } = await setup(t, { env: { CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "IS=28" } });
  const r = await ask(service, ["IS"], 2 * HOUR, { energyJ: KWH });
  t.deepEqual(r.candidates.map(row)[0], ["IS", "10:20", "12:20", 28], "the best window is to start now");
  t.like(r.candidates[0], { provider: "static", isForecast: false, source: IntensitySource.INTENSITY_SOURCE_CONFIGURED, carbonG: 28 });
  t.deepEqual(r.runNow.map(row), [["IS", "10:20", "12:20", 28]]);
  t.deepEqual(r.notes, ["IS: static has no forecast; its configured constant is flat, so starting later changes nothing there"]);
});

test("statuses: bad requests are INVALID_ARGUMENT, nothing within the forecasts OUT_OF_RANGE (with the horizon), no provider FAILED_PRECONDITION (with a hint)", async (t) => {
  const { service } = await setup(t, { fr: forecast(24, { 2: null, 5: null, 8: null, 11: null, 14: null, 17: null, 20: null }, 100) });
  await fails(t, ask(service, [], HOUR), status.INVALID_ARGUMENT);
  await fails(t, ask(service, ["DE"], 0), status.INVALID_ARGUMENT);
  await fails(t, ask(service, ["not a zone"], HOUR), status.INVALID_ARGUMENT);
  const short = await fails(t, ask(service, ["DE"], 2 * HOUR, { latestEnd: new Date(NOW + HOUR) }), status.INVALID_ARGUMENT);
  t.regex(short.details, /2026-12-03T10:20Z \.\. 2026-12-03T11:20Z is shorter than the duration \(2 h\)/);
  const beyond = await fails(t, ask(service, ["DE"], HOUR, { earliestStart: new Date(NOW + 80 * HOUR) }), status.OUT_OF_RANGE);
  t.regex(beyond.details, /the horizon is 72 h, until 2026-12-06T10:20Z/);
  const tooLong = await fails(t, ask(service, ["DE", "GB"], 30 * HOUR), status.OUT_OF_RANGE);
  t.regex(tooLong.details, /the shortest \(DE, electricitymaps\) ends at 2026-12-04T10:00Z, a 23\.67 h horizon/);
  const gaps = await fails(t, ask(service, ["FR"], 3.5 * HOUR), status.OUT_OF_RANGE);
  t.regex(
    gaps.details,
    /no 3\.5 h window without a gap fits in 2026-12-03T10:20Z \.\. 2026-12-04T10:00Z: FR: forecast until 2026-12-04T10:00Z \(23\.67 h horizon\), values 2026-12-03T10:20Z \.\. 2026-12-03T12:00Z, /,
  );
  const none = await fails(t, ask(service, ["DE"], HOUR, { provider: "ukgrid" }), status.FAILED_PRECONDITION);
  t.regex(none.details, /no configured provider has a forecast for zone DE \(no configured provider covers zone DE/);
  t.regex(String(none.metadata.get("carbonmon-hint")[0]), /ELECTRICITYMAPS_API_TOKEN.*CARBONMON_INTENSITY_CONSTANTS/);
});

test("a location whose providers are down for now is skipped and reported; the others are answered", async (t) => {
  const { wt, service } = await setup(t, { watttime: true, env: { CARBONMON_PROVIDERS: "electricitymaps,watttime" } });
  wt.setFault("/v3/forecast", { status: 429, headers: { "retry-after": "0" } });
  const r = await ask(service, ["CAISO_NORTH", "DE"], HOUR, { maxCandidates: 1 });
  t.deepEqual(
    r.candidates.map((c) => c.zone),
    ["DE"],
  );
  t.is(r.skipped.length, 1);
  t.like(r.skipped[0], { zone: "CAISO_NORTH" });
  t.regex(r.skipped[0]!.message, /watttime/);
});
