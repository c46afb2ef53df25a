/**
 * The intensity service end to end: real gRPC on 127.0.0.1, real HTTP to imitation ElectricityMaps and UK
 * grid servers, the offline dataset, the SQLite store.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { ServiceError } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import test from "ava";
import {
  IntensitySource,
  ProviderHealth,
  ResolutionMethod,
  type ComputeEmissionsRequest,
  type ComputeEmissionsResponse,
  type HistoryRequest,
  type IntensityPoint,
  type IntensityRequest,
  type IntensitySeries,
  type ListProvidersRequest,
  type ListProvidersResponse,
  type Location,
  type ResolvedLocation,
} from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { FAKE_EM_TOKEN, recordedHistory, startFakeElectricityMaps } from "../../helpers/fake-electricitymaps.js";
import { startFakeUkGrid } from "../../helpers/fake-ukgrid.js";
import { call, startTestIntensity, tempDataDir, type TestIntensity } from "../../helpers/grpc.js";
import type { IntensityOptions } from "../../../server/intensity/main.js";
import { ManualClock } from "../../../server/shared/clock.js";

const HOUR_MS = 3_600_000;
const req = (zone: string, extra: Partial<IntensityRequest> = {}): IntensityRequest => ({
  location: { zone },
  emissionFactor: 0,
  provider: "",
  ...extra,
});
const current = (s: TestIntensity, r: IntensityRequest) =>
  call<IntensityRequest, IntensityPoint>(s.client, s.client.getCurrentIntensity, r);
const recent = (s: TestIntensity, r: IntensityRequest) => call<IntensityRequest, IntensitySeries>(s.client, s.client.getRecentIntensity, r);

async function setup(t: import("ava").ExecutionContext, extraEnv: Record<string, string> = {}, options: IntensityOptions = {}) {
  const lastHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const em = await startFakeElectricityMaps({
    series: { "US-MIDW-MISO": recordedHistory(lastHour) },
    locations: [{ lat: 42.28, lon: -83.74, zone: "US-MIDW-MISO" }],
  });
  const uk = await startFakeUkGrid();
  const ipinfo = createServer((_q, res) => res.end(JSON.stringify({ city: "Ann Arbor", country: "US", loc: "42.2776,-83.7409" })));
  await new Promise<void>((r) => ipinfo.listen(0, "127.0.0.1", r));
  const data = tempDataDir();
  const env = {
    ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
    CARBONMON_UKGRID_URL: uk.url,
    CARBONMON_IPINFO_URL: `http://127.0.0.1:${(ipinfo.address() as AddressInfo).port}/json`,
    CARBONMON_INTENSITY_CONSTANTS: "IS=28",
    CARBONMON_DATA_DIR: data.dir,
    ...extraEnv,
  };
  const service = await startTestIntensity(env, options);
  t.teardown(async () => {
    await service.close();
    await em.close();
    await uk.close();
    ipinfo.close();
    data.cleanup();
  });
  return { em, uk, service, env, lastHour };
}

test("current value with provenance; cached afterwards; 1,000 concurrent identical requests make one upstream call", async (t) => {
  const { em, service } = await setup(t);
  const [first, ...rest] = await Promise.all(Array.from({ length: 1000 }, () => current(service, req("US-MIDW-MISO"))));
  t.is(em.requests.filter((r) => r.path === "/carbon-intensity/latest").length, 1);
  t.true(rest.every((p) => p.gPerKwh === first!.gPerKwh));
  t.is(first!.provider, "electricitymaps");
  t.is(first!.source, IntensitySource.INTENSITY_SOURCE_LIVE);
  t.is(first!.zone, "US-MIDW-MISO");
  t.deepEqual(
    first!.attempts.map((a) => [a.provider, a.code]),
    [["electricitymaps", "OK"]],
  );
  t.is(em.requests[0]!.headers["auth-token"], FAKE_EM_TOKEN);
  const again = await current(service, req("US-MIDW-MISO"));
  t.true(again.cached);
  t.is(em.requests.filter((r) => r.path === "/carbon-intensity/latest").length, 1);
});

test("the last 24 hours (Zeus parity) and ComputeEmissions split exactly at hour boundaries", async (t) => {
  const { service, lastHour } = await setup(t);
  const history = recordedHistory(lastHour);
  const series = await recent(service, req("US-MIDW-MISO"));
  const byStart = new Map(series.points.map((p) => [p.validFrom!.getTime(), p]));
  const h1 = history[20]!;
  const h2 = history[21]!;
  const t1 = Date.parse(h1.datetime);
  t.is(byStart.get(t1)!.gPerKwh, h1.carbonIntensity!);
  t.is(byStart.get(t1)!.isEstimated, h1.isEstimated);
  // 7.2 MJ from 30 min before the boundary to 30 min after: half in each hour.
  const r = await call<ComputeEmissionsRequest, ComputeEmissionsResponse>(service.client, service.client.computeEmissions, {
    location: { zone: "US-MIDW-MISO" },
    emissionFactor: 0,
    gapPolicy: 0,
    provider: "",
    segments: [{ start: new Date(t1 + HOUR_MS / 2), end: new Date(t1 + (3 * HOUR_MS) / 2), energyJ: 7.2e6, device: "gpu:0" }],
  });
  const expected = 1 * h1.carbonIntensity! + 1 * h2.carbonIntensity!; // 3.6 MJ = 1 kWh in each hour
  t.true(Math.abs(r.carbonG["gpu:0"]! - expected) <= 1e-9 * expected, `${r.carbonG["gpu:0"]} vs ${expected}`);
  t.is(r.periods.length, 2);
  // Each period says whether its value may still change: these hours are over, so only an estimate may.
  t.deepEqual(
    r.periods.map((p) => p.provisional),
    [true, true],
  );
  const measured = history[16]!; // the last measured (not estimated) hour of the recorded day
  t.false(measured.isEstimated);
  const m16 = Date.parse(measured.datetime);
  const across = await call<ComputeEmissionsRequest, ComputeEmissionsResponse>(service.client, service.client.computeEmissions, {
    location: { zone: "US-MIDW-MISO" },
    emissionFactor: 0,
    gapPolicy: 0,
    provider: "",
    segments: [{ start: new Date(m16), end: new Date(m16 + 2 * HOUR_MS), energyJ: 1e6, device: "gpu:0" }],
  });
  t.deepEqual(
    across.periods.map((p) => p.provisional),
    [false, true],
    "measured hour 16, estimated hour 17",
  );
  t.true(across.provisional);
});

test("fallback: a zone ElectricityMaps has no data for is answered by the next provider, saying why", async (t) => {
  const { service } = await setup(t);
  const gb = await current(service, req("GB"));
  t.is(gb.provider, "ukgrid");
  t.deepEqual(
    gb.attempts.map((a) => [a.provider, a.code]),
    [
      ["electricitymaps", "NOT_FOUND"],
      ["watttime", "FAILED_PRECONDITION"],
      ["ukgrid", "OK"],
    ],
  );
  t.deepEqual(
    gb.attempts.slice(0, 1).map((a) => a.message.includes("No recent data")),
    [true],
  );
  const iceland = await current(service, req("IS", { provider: "static" }));
  t.is(iceland.gPerKwh, 28);
  t.is(iceland.source, IntensitySource.INTENSITY_SOURCE_CONFIGURED);
});

test("rejected credentials fall through, and the token never appears in what callers see", async (t) => {
  const { em, service } = await setup(t);
  em.setFault("/carbon-intensity/latest", { status: 401, body: { error: "Invalid auth-token" } });
  const de = await current(service, req("DE"));
  t.is(de.provider, "offline");
  t.is(de.source, IntensitySource.INTENSITY_SOURCE_ANNUAL_AVERAGE);
  t.is(de.attempts[0]!.code, "UNAUTHENTICATED");
  t.false(JSON.stringify(de).includes(FAKE_EM_TOKEN));
  const err = (await t.throwsAsync(current(service, req("US-MIDW-MISO", { provider: "electricitymaps" })))) as ServiceError;
  t.is(err.code, status.UNAUTHENTICATED);
  t.false(err.details.includes(FAKE_EM_TOKEN));
});

test("no API key at all: the offline default answers, labelled as an annual average", async (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const service = await startTestIntensity({ CARBONMON_DATA_DIR: data.dir, CARBONMON_PROVIDERS: "electricitymaps,offline" });
  t.teardown(() => service.close());
  const p = await current(service, req("FR"));
  t.is(p.provider, "offline");
  t.regex(p.estimationMethod, /ANNUAL_AVERAGE/);
  t.deepEqual(
    p.attempts.map((a) => [a.provider, a.code]),
    [
      ["electricitymaps", "FAILED_PRECONDITION"],
      ["offline", "OK"],
    ],
  );
  t.regex(p.attempts[0]!.message, /ELECTRICITYMAPS_API_TOKEN is not set/);
  const providers = await call<ListProvidersRequest, ListProvidersResponse>(service.client, service.client.listProviders, {});
  t.deepEqual(
    providers.providers.map((x) => [x.name, x.order, x.health]),
    [
      ["electricitymaps", 0, ProviderHealth.PROVIDER_HEALTH_UNCONFIGURED],
      ["offline", 1, ProviderHealth.PROVIDER_HEALTH_HEALTHY],
    ],
  );
  t.regex(providers.providers[0]!.reason, /ELECTRICITYMAPS_API_TOKEN/);
});

test("a restart keeps history: with upstream down, the store answers", async (t) => {
  const { em, service, env, lastHour } = await setup(t);
  const before = await recent(service, req("US-MIDW-MISO"));
  t.is(before.points.length, 24);
  await service.close();
  em.setFault("/carbon-intensity/history", { status: 503, body: { error: "down" } });
  em.setFault("/carbon-intensity/past-range", { status: 503, body: { error: "down" } });
  const again = await startTestIntensity(env);
  t.teardown(() => again.close());
  const h = await call<HistoryRequest, IntensitySeries>(again.client, again.client.getIntensityHistory, {
    location: { zone: "US-MIDW-MISO" },
    start: new Date(lastHour - 23 * HOUR_MS),
    end: new Date(lastHour + HOUR_MS),
    emissionFactor: 0,
    provider: "electricitymaps",
    gapPolicy: 0,
  });
  t.is(h.points.length, 24);
  t.is(h.attempts[0]!.code, "UNAVAILABLE");
  t.regex(h.attempts[0]!.message, /answered from the store/);
});

test("locations: coordinates and auto (IP lookup) resolve to a zone; bad input is INVALID_ARGUMENT", async (t) => {
  const { service, em } = await setup(t);
  const byCoords = await call<Location, ResolvedLocation>(service.client, service.client.resolveLocation, {
    coordinates: { lat: 42.28, lon: -83.74 },
  });
  t.is(byCoords.zone, "US-MIDW-MISO");
  t.is(byCoords.method, ResolutionMethod.RESOLUTION_METHOD_COORDINATES);
  t.is(em.requests.find((r) => r.query.lat !== undefined)!.query.shouldUseFallbackCallerLookup, "false");
  const auto = await call<Location, ResolvedLocation>(service.client, service.client.resolveLocation, { autoDetect: true });
  t.is(auto.zone, "US-MIDW-MISO");
  t.is(auto.method, ResolutionMethod.RESOLUTION_METHOD_IP_LOOKUP);
  t.regex(auto.detail, /Ann Arbor/);
  for (const bad of [{}, { zone: "not a zone" }, { coordinates: { lat: 95, lon: 0 } }] as Location[]) {
    const err = (await t.throwsAsync(
      call<Location, ResolvedLocation>(service.client, service.client.resolveLocation, bad),
    )) as ServiceError;
    t.is(err.code, status.INVALID_ARGUMENT);
  }
});

test("WatchIntensity: the current point at once to every watcher, one upstream poll for all, a new point when the value changes", async (t) => {
  const clock = new ManualClock(Date.now());
  const { em, service, lastHour } = await setup(t, {}, { clock, watchPollMs: 50 });
  const received: IntensityPoint[][] = Array.from({ length: 20 }, () => []);
  const streams = received.map((got) => {
    const s = service.client.watchIntensity(req("US-MIDW-MISO"));
    s.on("data", (p: IntensityPoint) => got.push(p));
    s.on("error", () => undefined);
    return s;
  });
  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
    t.true(cond());
  };
  await until(() => received.every((g) => g.length === 1));
  const latestCalls = () => em.requests.filter((r) => r.path === "/carbon-intensity/latest").length;
  t.is(latestCalls(), 1);
  await new Promise((r) => setTimeout(r, 300)); // several polls: answered by the cache, nothing new pushed
  t.true(received.every((g) => g.length === 1));
  t.is(latestCalls(), 1);
  const changed = recordedHistory(lastHour).map((p, i, all) => (i === all.length - 1 ? { ...p, carbonIntensity: 999 } : p));
  em.setSeries("US-MIDW-MISO", changed);
  clock.advance(10 * 60_000); // the cached value expires
  await until(() => received.every((g) => g.length === 2));
  t.true(received.every((g) => g[1]!.gPerKwh === 999));
  t.is(latestCalls(), 2);
  for (const s of streams) s.cancel();
  await until(() => service.watch.watchers === 0);
});

test("zones in use are recorded: last week's hours stay answerable after upstream stops showing them", async (t) => {
  const { em, service, env, lastHour } = await setup(t);
  await current(service, req("US-MIDW-MISO"));
  const saved = await service.intensity.record();
  t.is(saved, 24);
  t.true(em.requests.some((r) => r.path === "/carbon-intensity/history" || r.path === "/carbon-intensity/past-range"));
  await service.close();
  // Upstream now has nothing for that day at all.
  em.setSeries("US-MIDW-MISO", []);
  const later = await startTestIntensity(env);
  t.teardown(() => later.close());
  const h = await call<HistoryRequest, IntensitySeries>(later.client, later.client.getIntensityHistory, {
    location: { zone: "US-MIDW-MISO" },
    start: new Date(lastHour - 23 * HOUR_MS),
    end: new Date(lastHour + HOUR_MS),
    emissionFactor: 0,
    provider: "electricitymaps",
    gapPolicy: 0,
  });
  t.is(h.points.length, 24);
  t.deepEqual(
    h.points.map((p) => p.provider),
    Array(24).fill("electricitymaps"),
  );
});
