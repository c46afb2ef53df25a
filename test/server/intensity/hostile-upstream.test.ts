/**
 * Hostile upstreams and hostile callers against the intensity service (issue 20): real gRPC on 127.0.0.1,
 * real HTTP to imitation providers that answer what no real provider should (infinite, negative or
 * absurdly dated values, points of another zone), and requests built to make the service work hard.
 */
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import test, { type ExecutionContext } from "ava";
import { pino } from "pino";
import type {
  ComputeEmissionsRequest,
  ComputeEmissionsResponse,
  ForecastRequest,
  HistoryRequest,
  IntensityPoint,
  IntensityRequest,
  IntensitySeries,
} from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { CarbonIntensityClient, type EmissionFactorType, type GapPolicy } from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { credentials } from "@grpc/grpc-js";
import { FAKE_EM_TOKEN, hourlySeries, startFakeElectricityMaps, type FakeElectricityMaps } from "../../helpers/fake-electricitymaps.js";
import { FAKE_WT_PASSWORD, FAKE_WT_USERNAME, startFakeWattTime } from "../../helpers/fake-watttime.js";
import { startFakeUkGrid } from "../../helpers/fake-ukgrid.js";
import { call, tempDataDir } from "../../helpers/grpc.js";
import { startIntensity, type IntensityOptions } from "../../../server/intensity/main.js";
import { loadIntensityConfig } from "../../../server/shared/config.js";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

interface Service {
  client: CarbonIntensityClient;
  store: import("../../../server/intensity/store/store.js").IntensityStore;
  logs: Array<Record<string, unknown>>;
  em: FakeElectricityMaps;
}

/** The service on 127.0.0.1:0 with a logger whose lines the test reads back. */
async function setup(t: ExecutionContext, env: Record<string, string> = {}, options: IntensityOptions = {}): Promise<Service> {
  const lastHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const em = await startFakeElectricityMaps({ series: { DE: hourlySeries("DE", lastHour - 30 * DAY_MS, 30 * 24 + 1) } });
  const data = tempDataDir();
  const logs: Array<Record<string, unknown>> = [];
  const log = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const config = loadIntensityConfig({
    env: {
      CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
      CARBONMON_DATA_DIR: data.dir,
      ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
      CARBONMON_ELECTRICITYMAPS_URL: em.url,
      CARBONMON_PROVIDERS: "electricitymaps,offline",
      ...env,
    },
  });
  const server = await startIntensity(config, log, options);
  const client = new CarbonIntensityClient(server.running.address, credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await server.running.shutdown(1000);
    await em.close();
    data.cleanup();
  });
  return { client, logs, em, store: server.store };
}

const req = (zone: string, provider = ""): IntensityRequest => ({ location: { zone }, emissionFactor: 0, provider });
const current = (s: Service, r: IntensityRequest) => call<IntensityRequest, IntensityPoint>(s.client, s.client.getCurrentIntensity, r);
const history = (s: Service, r: HistoryRequest) => call<HistoryRequest, IntensitySeries>(s.client, s.client.getIntensityHistory, r);
const emissions = (s: Service, r: ComputeEmissionsRequest) =>
  call<ComputeEmissionsRequest, ComputeEmissionsResponse>(s.client, s.client.computeEmissions, r);
const forecast = (s: Service, r: ForecastRequest) => call<ForecastRequest, IntensitySeries>(s.client, s.client.getForecast, r);

async function rejected(t: ExecutionContext, p: Promise<unknown>): Promise<ServiceError> {
  const err = await t.throwsAsync(p);
  return err as unknown as ServiceError;
}

/** A raw /latest answer, exactly as text (so that 1e999 reaches JSON.parse). */
function latest(zone: string, intensity: string, datetime = new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS).toISOString()): string {
  return `{"zone":"${zone}","carbonIntensity":${intensity},"datetime":"${datetime}","updatedAt":"${datetime}","emissionFactorType":"lifecycle","isEstimated":false,"estimationMethod":null}`;
}

const invalidLogs = (s: Service, provider: string) =>
  s.logs.filter((l) => l.provider === provider && String(l.msg).includes("invalid value"));

for (const [name, body] of [
  ["an infinite intensity (1e999)", latest("DE", "1e999")],
  ["a negative intensity", latest("DE", "-500")],
  ["a datetime in year 275760", latest("DE", "300", "+275760-09-13T00:00:00.000Z")],
] as const) {
  test(`ElectricityMaps answering ${name}: UNAVAILABLE naming the provider, logged, never cached or served`, async (t) => {
    const s = await setup(t);
    s.em.setFault("/carbon-intensity/latest", { status: 200, body });
    const err = await rejected(t, current(s, req("DE", "electricitymaps")));
    t.is(err.code, status.UNAVAILABLE);
    t.regex(err.details, /electricitymaps answered an invalid value for zone DE/);
    t.is(invalidLogs(s, "electricitymaps").length, 1);
    // The chain goes on to the next provider instead.
    const fallback = await current(s, req("DE"));
    t.is(fallback.provider, "offline");
    t.true(Number.isFinite(fallback.gPerKwh) && fallback.gPerKwh > 0);
    t.deepEqual(
      fallback.attempts.map((a) => [a.provider, a.code]),
      [
        ["electricitymaps", "UNAVAILABLE"],
        ["offline", "OK"],
      ],
    );
    // Nothing of the bad answer was kept: once upstream is sound again, its value is served.
    s.em.setFault("/carbon-intensity/latest", undefined);
    const sound = await current(s, req("DE", "electricitymaps"));
    t.is(sound.provider, "electricitymaps");
    t.false(sound.cached);
    t.true(sound.gPerKwh >= 0 && Number.isFinite(sound.gPerKwh));
  });
}

test("a history answer for DE whose points say FR: refused, none of its points served or stored", async (t) => {
  const s = await setup(t);
  const lastHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const points = hourlySeries("FR", lastHour - 3 * HOUR_MS, 4, () => 20);
  s.em.setFault("/carbon-intensity/history", { status: 200, body: { zone: "DE", history: points } });
  const h = await history(s, {
    ...req("DE", "electricitymaps"),
    start: new Date(lastHour - 3 * HOUR_MS),
    end: new Date(lastHour),
    gapPolicy: 1,
  });
  t.is(h.points.length, 0);
  t.is(h.attempts[0]?.code, "UNAVAILABLE");
  t.regex(h.attempts[0]!.message, /a point for zone FR instead of DE/);
  t.is(invalidLogs(s, "electricitymaps").length, 1);
  // Not stored either: with upstream sound again, the DE values are served, not FR's 20 g.
  s.em.setFault("/carbon-intensity/history", undefined);
  const again = await history(s, {
    ...req("DE", "electricitymaps"),
    start: new Date(lastHour - 3 * HOUR_MS),
    end: new Date(lastHour - HOUR_MS),
    gapPolicy: 1,
  });
  t.true(again.points.length > 0);
  t.true(again.points.every((p) => p.zone === "DE" && p.gPerKwh !== 20));
});

test("negative intensities from WattTime and the UK grid are refused like ElectricityMaps' (UNAVAILABLE naming the provider)", async (t) => {
  const wt = await startFakeWattTime({ value: () => -500 });
  const uk = await startFakeUkGrid();
  t.teardown(async () => {
    await wt.close();
    await uk.close();
  });
  const s = await setup(t, {
    CARBONMON_PROVIDERS: "watttime,ukgrid,offline",
    WATTTIME_USERNAME: FAKE_WT_USERNAME,
    WATTTIME_PASSWORD: FAKE_WT_PASSWORD,
    CARBONMON_WATTTIME_URL: wt.url,
    CARBONMON_UKGRID_URL: uk.url,
  });
  const wtErr = await rejected(t, current(s, req("CAISO_NORTH", "watttime")));
  t.is(wtErr.code, status.UNAVAILABLE);
  t.regex(wtErr.details, /watttime answered an invalid value for zone CAISO_NORTH \(current: intensity -/);
  const halfHour = Math.floor(Date.now() / 1_800_000) * 1_800_000;
  const iso = (ms: number) => `${new Date(ms).toISOString().slice(0, 16)}Z`;
  uk.setFault({
    status: 200,
    body: JSON.stringify({
      data: [{ from: iso(halfHour), to: iso(halfHour + 1_800_000), intensity: { forecast: -500, actual: -500, index: "very low" } }],
    }),
  });
  const ukErr = await rejected(t, current(s, req("GB", "ukgrid")));
  t.is(ukErr.code, status.UNAVAILABLE);
  t.regex(ukErr.details, /ukgrid answered an invalid value for zone GB/);
  t.is(invalidLogs(s, "watttime").length, 1);
  t.is(invalidLogs(s, "ukgrid").length, 1);
});

const seg = (startMs: number, endMs: number, energyJ = 3.6e6, device = "gpu0") => ({
  start: new Date(startMs),
  end: new Date(endMs),
  energyJ,
  device,
});
const upstreamCalls = (s: Service) => s.em.requests.length;

test("ComputeEmissions limits come before any fetch: span (31 days), segment count (100,000), bad segments", async (t) => {
  const s = await setup(t);
  const now = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  // A thousand years: the span is too long (not "missing configuration"), and nothing is asked upstream.
  const millennium = await rejected(t, emissions(s, { ...req("DE"), segments: [seg(now - 1000 * 365 * DAY_MS, now)], gapPolicy: 0 }));
  t.is(millennium.code, status.INVALID_ARGUMENT);
  t.regex(millennium.details, /the segments span 365000\.0 days .*at most 31 days per request/);
  const justOver = await rejected(t, emissions(s, { ...req("DE"), segments: [seg(now - 31 * DAY_MS - 1, now)], gapPolicy: 0 }));
  t.is(justOver.code, status.INVALID_ARGUMENT);
  t.regex(justOver.details, /at most 31 days/);
  // 150,000 segments crashed the handler (Math.min(...array): stack overflow, INTERNAL).
  const many = Array.from({ length: 150_000 }, (_, i) => seg(now - 2 * HOUR_MS + i, now - 2 * HOUR_MS + i + 1, 1));
  const tooMany = await rejected(t, emissions(s, { ...req("DE"), segments: many, gapPolicy: 0 }));
  t.is(tooMany.code, status.INVALID_ARGUMENT);
  t.regex(tooMany.details, /^150000 segments, at most 100000 per request/);
  const backwards = await rejected(
    t,
    emissions(s, { ...req("DE"), segments: [seg(now - HOUR_MS, now - HOUR_MS), seg(now, now - HOUR_MS)], gapPolicy: 0 }),
  );
  t.is(backwards.code, status.INVALID_ARGUMENT);
  t.regex(backwards.details, /^segments\[1\]: end .* is before start/);
  t.is(upstreamCalls(s), 0);
  // Exactly at the limits it is priced: 100,000 segments over 31 days (two are enough to span it).
  const atLimit = Array.from({ length: 100_000 }, (_, i) => seg(now - 3 * HOUR_MS + i, now - 3 * HOUR_MS + i + 1, 1));
  const ok = await emissions(s, { ...req("DE"), segments: atLimit, gapPolicy: 0 });
  t.is(ok.totalEnergyJ, 100_000);
  const month = await emissions(s, {
    ...req("DE"),
    segments: [seg(now - 31 * DAY_MS, now - 31 * DAY_MS + HOUR_MS), seg(now - HOUR_MS, now)],
    gapPolicy: 0,
  });
  t.is(month.totalEnergyJ, 2 * 3.6e6);
});

test("unknown enum values are INVALID_ARGUMENT, not silent defaults; GetForecast's horizon message matches its check", async (t) => {
  const s = await setup(t);
  const now = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const factor = await rejected(t, current(s, { ...req("DE"), emissionFactor: 99 as EmissionFactorType }));
  t.is(factor.code, status.INVALID_ARGUMENT);
  t.regex(factor.details, /emission_factor 99 is not an EmissionFactorType/);
  const policy = await rejected(t, emissions(s, { ...req("DE"), segments: [seg(now - HOUR_MS, now)], gapPolicy: 7 as GapPolicy }));
  t.is(policy.code, status.INVALID_ARGUMENT);
  t.regex(policy.details, /gap_policy 7 is not a GapPolicy/);
  t.is(upstreamCalls(s), 0);
  const zero = await rejected(t, forecast(s, { ...req("DE"), horizon: { seconds: 0n, nanos: 0 } }));
  t.is(zero.code, status.INVALID_ARGUMENT);
  t.regex(zero.details, /^horizon must be more than 0 and at most 72 h, got 0 s/);
});

test("the budget counts upstream requests: a 25-day history in three 240 h chunks takes three tokens; the fourth request is refused", async (t) => {
  const s = await setup(t, {}, { budgets: { electricitymaps: { capacity: 4, windowMs: 30 * DAY_MS } } });
  const now = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const span = (days: number) => ({
    ...req("DE", "electricitymaps"),
    start: new Date(now - 29 * DAY_MS),
    end: new Date(now - 29 * DAY_MS + days * DAY_MS),
    gapPolicy: 1,
  });
  const first = await history(s, span(25));
  t.is(first.attempts[0]?.code, "OK");
  t.is(s.em.requests.filter((r) => r.path === "/carbon-intensity/past-range").length, 3);
  const providers = await call<object, { providers: Array<{ name: string; budgetRemaining: number }> }>(
    s.client,
    s.client.listProviders,
    {},
  );
  t.is(providers.providers.find((p) => p.name === "electricitymaps")?.budgetRemaining, 1);
  // One token left, three chunks asked: the first is made, the second refused, none after it.
  const second = await history(s, span(24));
  t.is(second.attempts[0]?.code, "RESOURCE_EXHAUSTED");
  t.regex(second.attempts[0]!.message, /request budget \(4 per 2592000 s\) is spent/);
  t.is(s.em.requests.filter((r) => r.path === "/carbon-intensity/past-range").length, 4);
});

/** An imitation ElectricityMaps /latest that misbehaves as told, and says when each request's socket closed. */
async function slowUpstream(t: ExecutionContext, handle: (res: import("node:http").ServerResponse) => void) {
  const { createServer } = await import("node:http");
  const state = { requests: 0, closed: 0, waiters: [] as Array<() => void> };
  const server = createServer((request, res) => {
    state.requests++;
    request.socket.on("close", () => {
      state.closed++;
      for (const w of state.waiters.splice(0)) w();
    });
    handle(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const address = server.address() as import("node:net").AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}/v3`,
    state,
    /** Resolves once `n` upstream sockets have closed. */
    closed: (n: number) =>
      new Promise<void>((resolve) => (state.closed >= n ? resolve() : state.waiters.push(() => void (state.closed >= n && resolve())))),
  };
}

/** Connects the channel and loads the offline dataset, so that a test's deadline is spent on the upstream only. */
const warm = (s: Service) => current(s, req("FR", "offline"));

/** GetCurrentIntensity with a deadline `ms` from now; the call object too (to cancel it). */
function currentWithin(s: Service, r: IntensityRequest, ms: number): { promise: Promise<IntensityPoint>; cancel: () => void } {
  let cancel = () => {};
  const promise = new Promise<IntensityPoint>((resolve, reject) => {
    const c = s.client.getCurrentIntensity(r, new Metadata(), { deadline: new Date(Date.now() + ms) }, (err, res) =>
      err ? reject(err) : resolve(res!),
    );
    cancel = () => c.cancel();
  });
  return { promise, cancel };
}

for (const [name, handle] of [
  ["hung before its headers", () => {}],
  [
    "dripping its body a byte at a time",
    (res: import("node:http").ServerResponse) => {
      res.writeHead(200, { "content-type": "application/json" });
      const drip = setInterval(() => (res.destroyed ? clearInterval(drip) : res.write(" ")), 50);
      res.on("close", () => clearInterval(drip));
    },
  ],
] as const) {
  test.serial(`an upstream ${name} never holds a call past its deadline: cut before it, the chain answers from offline`, async (t) => {
    const up = await slowUpstream(t, handle);
    const s = await setup(t, { CARBONMON_ELECTRICITYMAPS_URL: up.url });
    await warm(s);
    const p = await currentWithin(s, req("DE"), 6000).promise;
    t.is(p.provider, "offline");
    t.is(p.attempts[0]?.provider, "electricitymaps");
    t.is(p.attempts[0]?.code, "DEADLINE_EXCEEDED");
    t.regex(p.attempts[0]!.message, /electricitymaps \/v3\/carbon-intensity\/latest request stopped at the caller's deadline/);
    await up.closed(1);
    t.is(up.state.requests, 1);
  });
}

test("a caller that cancels cancels its upstream request", async (t) => {
  const up = await slowUpstream(t, () => {});
  const s = await setup(t, { CARBONMON_ELECTRICITYMAPS_URL: up.url });
  t.timeout(8000, "the upstream socket should close when the caller cancels, long before the 10 s request timeout");
  const c = currentWithin(s, req("DE", "electricitymaps"), 60_000);
  const err = t.throwsAsync(c.promise);
  while (up.state.requests === 0) await new Promise((r) => setImmediate(r));
  c.cancel();
  t.is(((await err) as unknown as ServiceError).code, status.CANCELLED);
  await up.closed(1);
  t.is(up.state.requests, 1);
});

test.serial("429 with a huge Retry-After: no wait past the deadline, the chain goes on at once", async (t) => {
  const up = await slowUpstream(t, (res) => {
    res.writeHead(429, { "retry-after": "86400", "content-type": "application/json" });
    res.end('{"error":"slow down"}');
  });
  const s = await setup(t, { CARBONMON_ELECTRICITYMAPS_URL: up.url });
  await warm(s);
  const p = await currentWithin(s, req("DE"), 5000).promise;
  t.is(p.provider, "offline");
  t.deepEqual(
    p.attempts.map((a) => [a.provider, a.code]),
    [
      ["electricitymaps", "RESOURCE_EXHAUSTED"],
      ["offline", "OK"],
    ],
  );
  t.is(up.state.requests, 1);
});

for (const [name, chunked] of [
  ["with a Content-Length", false],
  ["chunked, without a length", true],
] as const) {
  test(`a response body over 8 MiB (${name}) is refused without being read whole`, async (t) => {
    const mib = Buffer.alloc(1024 * 1024, 0x20);
    let written = 0;
    const up = await slowUpstream(t, (res) => {
      res.writeHead(200, { "content-type": "application/json", ...(chunked ? {} : { "content-length": String(50 * mib.length) }) });
      // 50 MiB offered, written as the client reads: a refusal stops it early.
      const more = (): void => {
        while (written < 50 && res.write(mib)) written++;
        if (written >= 50) res.end();
      };
      res.on("drain", () => {
        written++;
        more();
      });
      more();
    });
    const s = await setup(t, { CARBONMON_ELECTRICITYMAPS_URL: up.url });
    const err = await rejected(t, current(s, req("DE", "electricitymaps")));
    t.is(err.code, status.UNAVAILABLE);
    t.regex(err.details, /electricitymaps \/v3\/carbon-intensity\/latest answered more than 8388608 bytes; not read/);
    await up.closed(up.state.requests);
    t.true(written < 50, `${written} MiB written`);
  });
}

test("the WattTime credential echoed by an upstream, in any encoding, reaches no gRPC message and no log line", async (t) => {
  const wt = await startFakeWattTime();
  t.teardown(() => wt.close());
  const s = await setup(t, {
    CARBONMON_PROVIDERS: "watttime",
    WATTTIME_USERNAME: FAKE_WT_USERNAME,
    WATTTIME_PASSWORD: FAKE_WT_PASSWORD,
    CARBONMON_WATTTIME_URL: wt.url,
  });
  const userPass = `${FAKE_WT_USERNAME}:${FAKE_WT_PASSWORD}`;
  const basic = Buffer.from(userPass).toString("base64");
  const forms = [
    basic,
    basic.replace(/=+$/, ""),
    Buffer.from(userPass).toString("base64url"),
    FAKE_WT_PASSWORD,
    encodeURIComponent(userPass),
    Buffer.from(FAKE_WT_PASSWORD).toString("base64"),
  ];
  const echoes = [
    `rejected: Authorization: Basic ${basic}`,
    `rejected ${forms.slice(1).join(" | ")}`,
    // Cut at 300 characters by the service: the cut falls inside the credential, which must not leave its start.
    `${"x".repeat(290)} ${basic}`,
  ];
  const seen: string[] = [];
  for (const echo of echoes) {
    wt.setFault("/login", { status: 401, body: { error: echo } });
    const err = await rejected(t, current(s, req("CAISO_NORTH", "watttime")));
    t.is(err.code, status.UNAUTHENTICATED);
    t.regex(err.details, /watttime \/login answered HTTP 401: /);
    seen.push(err.details, err.metadata.get("carbonmon-hint").join(" "));
  }
  const providers = await call<object, { providers: Array<{ name: string; reason: string }> }>(s.client, s.client.listProviders, {});
  seen.push(...providers.providers.map((p) => p.reason), ...s.logs.map((l) => JSON.stringify(l)));
  t.true(seen.some((x) => x.includes("rejected: Authorization: ***")));
  for (const text of seen) for (const f of [...forms, basic.slice(0, 8)]) t.false(text.includes(f), `${JSON.stringify(f)} in ${text}`);
});

test.serial("an answer a caller's deadline cut short is not cached for the next callers", async (t) => {
  let first = true;
  const hour = new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS).toISOString();
  const up = await slowUpstream(t, (res) => {
    if (first) return void (first = false); // the first request hangs
    res.writeHead(200, { "content-type": "application/json" });
    res.end(latest("DE", "321", hour));
  });
  const s = await setup(t, { CARBONMON_ELECTRICITYMAPS_URL: up.url });
  await warm(s);
  const hurried = await currentWithin(s, req("DE"), 6000).promise;
  t.is(hurried.provider, "offline");
  const patient = await current(s, req("DE"));
  t.is(patient.provider, "electricitymaps");
  t.is(patient.gPerKwh, 321);
  t.false(patient.cached);
});

test("points read back from the store pass the same check: a negative one stored before is set aside, logged, not served", async (t) => {
  const s = await setup(t);
  const lastHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const at = lastHour - 48 * HOUR_MS;
  const base = {
    zone: "DE",
    isEstimated: false,
    provider: "electricitymaps",
    signal: "average",
    emissionFactor: "lifecycle",
    source: "live",
    fetchedAtMs: Date.now(),
  } as const;
  await s.store.save([
    { ...base, gPerKwh: -500, validFromMs: at, validToMs: at + HOUR_MS },
    { ...base, gPerKwh: 250, validFromMs: at + HOUR_MS, validToMs: at + 2 * HOUR_MS },
  ]);
  s.em.setFault("/carbon-intensity/past-range", { status: 500, body: { error: "down" } });
  const h = await history(s, { ...req("DE", "electricitymaps"), start: new Date(at), end: new Date(at + 2 * HOUR_MS), gapPolicy: 1 });
  t.deepEqual(
    h.points.map((p) => p.gPerKwh),
    [250],
  );
  t.is(h.gaps.length, 1);
  t.true(s.logs.some((l) => l.msg === "stored points failed validation; set aside, not served" && l.setAside === 1));
});

test("the checked provider is the provider itself: WattTime's token from resolving a location serves its data calls (one login)", async (t) => {
  const wt = await startFakeWattTime();
  t.teardown(() => wt.close());
  const s = await setup(t, {
    CARBONMON_PROVIDERS: "watttime,offline",
    WATTTIME_USERNAME: FAKE_WT_USERNAME,
    WATTTIME_PASSWORD: FAKE_WT_PASSWORD,
    CARBONMON_WATTTIME_URL: wt.url,
  });
  const p = await current(s, { location: { coordinates: { lat: 37.77, lon: -122.42 } }, emissionFactor: 0, provider: "" });
  t.is(p.provider, "watttime");
  t.is(p.zone, "CAISO_NORTH");
  t.is(wt.loginCount(), 1);
});
