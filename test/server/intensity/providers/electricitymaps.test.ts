import test, { type ExecutionContext } from "ava";
import { getJson } from "../../../../server/shared/net/http.js";
import type { Query } from "../../../../server/intensity/providers/provider.js";
import { ElectricityMapsProvider } from "../../../../server/intensity/providers/electricitymaps.js";
import { ManualClock } from "../../../../server/shared/clock.js";
import { AppError, Code } from "../../../../server/shared/errors.js";
import {
  FAKE_EM_TOKEN,
  hourlySeries,
  recordedHistory,
  startFakeElectricityMaps,
  type FakeElectricityMapsOptions,
} from "../../../helpers/fake-electricitymaps.js";

/** Polls a condition (20 ms) until it holds, or throws after timeoutMs. */
async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !check(); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

const HOUR = 3_600_000;
const ZONE = "US-MIDW-MISO";
/** Just after the recording: the fixture's last point starts 2024-12-01T05:00Z, updated at 05:44Z. */
const RECORDED_NOW = Date.parse("2024-12-01T05:50:00Z");
const q: Query = { zone: ZONE, emissionFactor: "lifecycle", allowEstimated: true };

async function setup(
  t: ExecutionContext,
  options: FakeElectricityMapsOptions = {},
  token: string | null = FAKE_EM_TOKEN,
  now = RECORDED_NOW,
) {
  const em = await startFakeElectricityMaps(options);
  t.teardown(() => em.close());
  const clock = new ManualClock(now);
  const sleeps: number[] = [];
  const provider = new ElectricityMapsProvider({
    baseUrl: em.url,
    apiToken: token ?? undefined,
    clock,
    http: { sleep: async (ms) => void sleeps.push(ms), timeoutMs: 2000 },
  });
  return { em, clock, provider, sleeps };
}

/** Expects an AppError with the code; no token (right or wrong) may appear in its message or hint. */
async function rejects(t: ExecutionContext, p: Promise<unknown>, code: Code, tokens: string[] = [FAKE_EM_TOKEN]): Promise<AppError> {
  const err = await t.throwsAsync(p, { instanceOf: AppError });
  t.is(err!.code, code, err!.detail);
  for (const token of tokens) t.false(err!.detail.includes(token), `token in: ${err!.detail}`);
  return err as AppError;
}

test("the recorded history becomes 24 hourly points with their estimation flags", async (t) => {
  const { em, provider } = await setup(t);
  const points = await provider.range(q, RECORDED_NOW - 24 * HOUR, RECORDED_NOW);
  t.is(points.length, 24);
  t.is(new Date(points[0]!.validFromMs).toISOString(), "2024-11-30T06:00:00.000Z");
  t.is(new Date(points[23]!.validFromMs).toISOString(), "2024-12-01T05:00:00.000Z");
  for (const [i, p] of points.entries()) {
    t.is(p.validToMs - p.validFromMs, HOUR);
    if (i > 0) t.is(p.validFromMs, points[i - 1]!.validToMs);
    t.like(p, {
      zone: ZONE,
      provider: "electricitymaps",
      signal: "average",
      emissionFactor: "lifecycle",
      source: "live",
      fetchedAtMs: RECORDED_NOW,
    });
  }
  t.deepEqual(points[0], {
    zone: ZONE,
    gPerKwh: 501,
    validFromMs: Date.parse("2024-11-30T06:00:00Z"),
    validToMs: Date.parse("2024-11-30T07:00:00Z"),
    isEstimated: true,
    estimationMethod: "TIME_SLICER_AVERAGE",
    provider: "electricitymaps",
    signal: "average",
    emissionFactor: "lifecycle",
    source: "live",
    fetchedAtMs: RECORDED_NOW,
    sourceUpdatedAtMs: Date.parse("2024-12-01T05:44:10.595Z"),
  });
  t.deepEqual(points.map((p) => p.isEstimated).join(""), "true" + "false".repeat(16) + "true".repeat(7));
  t.is(points[1]!.estimationMethod, undefined);
  t.is(em.requests.length, 1);
  t.like(em.requests[0], {
    path: "/carbon-intensity/history",
    query: { zone: ZONE, emissionFactorType: "lifecycle", disableEstimations: "false" },
  });
  t.is(em.requests[0]!.headers["auth-token"], FAKE_EM_TOKEN);
});

test("a range inside the last 24 h keeps only the hours that overlap it; estimates dropped when not allowed", async (t) => {
  const { provider } = await setup(t);
  const from = Date.parse("2024-11-30T22:30:00Z");
  const points = await provider.range(q, from, Date.parse("2024-12-01T01:00:00Z"));
  t.deepEqual(
    points.map((p) => new Date(p.validFromMs).toISOString().slice(11, 13)),
    ["22", "23", "00"],
  );
  const measured = await provider.range({ ...q, allowEstimated: false }, from, Date.parse("2024-12-01T01:00:00Z"));
  t.deepEqual(
    measured.map((p) => p.gPerKwh),
    [points[0]!.gPerKwh],
  );
});

test("the recorded history re-dated to another day answers a window ending now", async (t) => {
  const now = Date.parse("2025-06-15T10:20:00Z");
  const series = recordedHistory(Date.parse("2025-06-15T10:00:00Z"));
  const { em, provider } = await setup(t, { series: { [ZONE]: series } }, FAKE_EM_TOKEN, now);
  const points = await provider.range(q, now - 3 * HOUR, now);
  t.deepEqual(
    points.map((p) => p.gPerKwh),
    series.slice(-4).map((p) => p.carbonIntensity),
  );
  t.is(points[3]!.validFromMs, Date.parse("2025-06-15T10:00:00Z"));
  t.is(points[3]!.sourceUpdatedAtMs, Date.parse("2025-06-15T10:44:10.595Z"));
  t.is(em.requests[0]!.path, "/carbon-intensity/history");
});

test("current() reads /latest with the auth-token header and the query's parameters", async (t) => {
  const { em, provider } = await setup(t);
  const p = await provider.current({ ...q, emissionFactor: "direct" });
  t.like(p, {
    zone: ZONE,
    gPerKwh: 494,
    validFromMs: Date.parse("2024-12-01T05:00:00Z"),
    validToMs: Date.parse("2024-12-01T06:00:00Z"),
    isEstimated: true,
    estimationMethod: "TIME_SLICER_AVERAGE",
    emissionFactor: "direct",
    source: "live",
  });
  t.like(em.requests[0], {
    path: "/carbon-intensity/latest",
    query: { zone: ZONE, emissionFactorType: "direct", disableEstimations: "false" },
  });
  t.is(em.requests[0]!.headers["auth-token"], FAKE_EM_TOKEN);
});

test("current() with estimates disallowed asks disableEstimations=true and refuses an estimate", async (t) => {
  const { em, provider } = await setup(t);
  const err = await rejects(t, provider.current({ ...q, allowEstimated: false }), Code.NotFound);
  t.regex(err.message, /only an estimated value for zone US-MIDW-MISO/);
  t.is(em.requests[0]!.query.disableEstimations, "true");
});

test("401 is UNAUTHENTICATED with a hint about the token and the free tier; the token is never shown", async (t) => {
  const wrong = "wrong-token-5c0ffee";
  const { em, provider } = await setup(t, {}, wrong);
  const err = await rejects(t, provider.current(q), Code.Unauthenticated, [wrong, FAKE_EM_TOKEN]);
  t.is(err.message, "electricitymaps /v3/carbon-intensity/latest answered HTTP 401: Invalid auth-token");
  t.regex(err.hint!, /check ELECTRICITYMAPS_API_TOKEN; the free tier covers one zone/);
  t.is(em.requests[0]!.headers["auth-token"], wrong);
  t.is(em.requests.length, 1);
});

test("403, 404 and 400 map to PERMISSION_DENIED, NOT_FOUND and INVALID_ARGUMENT without retry", async (t) => {
  const { em, provider } = await setup(t);
  em.setFault("/carbon-intensity/latest", { status: 403, body: { error: "Forbidden: endpoint not in plan" }, times: 1 });
  const denied = await rejects(t, provider.current(q), Code.PermissionDenied);
  t.regex(denied.message, /HTTP 403: Forbidden: endpoint not in plan/);
  t.truthy(denied.hint);
  const missing = await rejects(t, provider.current({ ...q, zone: "XX" }), Code.NotFound);
  t.is(missing.message, 'electricitymaps /v3/carbon-intensity/latest answered HTTP 404: No recent data for zone "XX"');
  em.setFault("/carbon-intensity/history", { status: 400, body: { error: "Invalid zone" } });
  const bad = await rejects(t, provider.range(q, RECORDED_NOW - HOUR, RECORDED_NOW), Code.InvalidArgument);
  t.regex(bad.message, /history answered HTTP 400: Invalid zone/);
  t.is(em.requests.length, 3);
});

test("429 with Retry-After waits as told, then succeeds", async (t) => {
  const { em, provider, sleeps } = await setup(t);
  em.setFault("/carbon-intensity/latest", {
    status: 429,
    body: { error: "Rate limit exceeded" },
    headers: { "Retry-After": "2" },
    times: 1,
  });
  t.is((await provider.current(q)).gPerKwh, 494);
  t.deepEqual(sleeps, [2000]);
  t.is(em.requests.length, 2);
});

test("5xx is retried, then UNAVAILABLE", async (t) => {
  const { em, provider, sleeps } = await setup(t);
  em.setFault("/carbon-intensity/latest", { status: 500, body: { error: "Internal error" } });
  const err = await rejects(t, provider.current(q), Code.Unavailable);
  t.regex(err.message, /electricitymaps .*HTTP 500: Internal error/);
  t.is(em.requests.length, 3);
  t.is(sleeps.length, 2);
});

test("a server slower than the timeout is UNAVAILABLE", async (t) => {
  const em = await startFakeElectricityMaps();
  t.teardown(() => em.close());
  em.setFault("/carbon-intensity/latest", { delayMs: 5000 });
  const provider = new ElectricityMapsProvider({
    baseUrl: em.url,
    apiToken: FAKE_EM_TOKEN,
    http: { timeoutMs: 500, retries: 1, sleep: async () => {} },
  });
  const err = await rejects(t, provider.current(q), Code.Unavailable);
  t.regex(err.message, /timed out after 500 ms/);
  // The retry was sent: the server logs it once it reads it (a busy machine may read it after the client gave up).
  await until(() => em.requests.length === 2, "the retry at the server", 5000);
  t.is(em.requests.length, 2);
});

test("malformed JSON is UNAVAILABLE", async (t) => {
  const { em, provider } = await setup(t);
  em.setFault("/carbon-intensity/history", { malformedJson: true });
  const err = await rejects(t, provider.range(q, RECORDED_NOW - HOUR, RECORDED_NOW), Code.Unavailable);
  t.regex(err.message, /^electricitymaps returned malformed JSON/);
});

test("an answer for another zone is NOT_FOUND, for latest, history, past-range and forecast", async (t) => {
  const { em, provider } = await setup(t);
  for (const path of ["latest", "history", "past-range", "forecast"]) em.setFault(`/carbon-intensity/${path}`, { zone: "US-MIDW-PJM" });
  const calls = [
    () => provider.current(q),
    () => provider.range(q, RECORDED_NOW - HOUR, RECORDED_NOW),
    () => provider.range(q, RECORDED_NOW - 48 * HOUR, RECORDED_NOW - 30 * HOUR),
    () => provider.forecast(q, 6 * HOUR),
  ];
  for (const call of calls) {
    const err = await rejects(t, call(), Code.NotFound);
    t.is(err.message, "ElectricityMaps answered for zone US-MIDW-PJM instead of US-MIDW-MISO");
  }
  t.deepEqual(
    em.requests.map((r) => r.path.split("/")[2]),
    ["latest", "history", "past-range", "forecast"],
  );
});

test("a null carbonIntensity is NOT_FOUND for current and skipped in ranges", async (t) => {
  const now = Date.parse("2024-12-10T00:30:00Z");
  const series = hourlySeries(ZONE, now - 48 * HOUR - 30 * 60_000, 48, (i) => (i % 2 === 0 ? null : 100 + i));
  const { em, provider } = await setup(t, { series: { [ZONE]: series } }, FAKE_EM_TOKEN, now);
  em.setFault("/carbon-intensity/latest", { nullIntensity: true });
  const err = await rejects(t, provider.current(q), Code.NotFound);
  t.is(err.message, "no value for zone US-MIDW-MISO at 2024-12-09T23:00:00.000Z");
  const points = await provider.range(q, now - 6 * HOUR, now);
  t.deepEqual(
    points.map((p) => p.gPerKwh),
    [143, 145, 147],
  );
});

test("a 15-day range older than 24 h is fetched from past-range in 2 chunks of at most 240 h", async (t) => {
  const now = Date.parse("2024-12-31T12:20:00Z");
  const start = now - 40 * 24 * HOUR - 20 * 60_000;
  const { em, provider } = await setup(t, { series: { [ZONE]: hourlySeries(ZONE, start, 40 * 24) } }, FAKE_EM_TOKEN, now);
  const from = Date.parse("2024-12-01T00:00:00Z");
  const to = from + 15 * 24 * HOUR;
  const points = await provider.range(q, from, to);
  t.is(points.length, 360);
  t.is(points[0]!.validFromMs, from);
  t.is(points[359]!.validToMs, to);
  for (let i = 1; i < points.length; i++) t.is(points[i]!.validFromMs, points[i - 1]!.validToMs);
  t.is(em.requests.length, 2);
  for (const r of em.requests) {
    t.is(r.path, "/carbon-intensity/past-range");
    t.is(r.headers["auth-token"], FAKE_EM_TOKEN);
    t.regex(r.query.start!, /^\d{4}-\d\d-\d\dT\d\d:00:00\.000Z$/);
    t.true(Date.parse(r.query.end!) - Date.parse(r.query.start!) <= 240 * HOUR);
  }
  t.deepEqual(
    em.requests.map((r) => [r.query.start, r.query.end]),
    [
      ["2024-12-01T00:00:00.000Z", "2024-12-11T00:00:00.000Z"],
      ["2024-12-11T00:00:00.000Z", "2024-12-16T00:00:00.000Z"],
    ],
  );
});

test("a range starting mid-hour includes the hour it starts in", async (t) => {
  const now = Date.parse("2024-12-31T12:20:00Z");
  const { provider } = await setup(
    t,
    { series: { [ZONE]: hourlySeries(ZONE, Date.parse("2024-12-01T00:00:00Z"), 30 * 24) } },
    FAKE_EM_TOKEN,
    now,
  );
  const points = await provider.range(q, Date.parse("2024-12-05T10:30:00Z"), Date.parse("2024-12-05T12:10:00Z"));
  t.deepEqual(
    points.map((p) => new Date(p.validFromMs).toISOString().slice(11, 16)),
    ["10:00", "11:00", "12:00"],
  );
});

test("forecast asks horizonHours (at most 72) and labels the points as forecast", async (t) => {
  const { em, provider } = await setup(t);
  const points = await provider.forecast(q, 6 * HOUR);
  t.is(em.requests[0]!.path, "/carbon-intensity/forecast");
  t.is(em.requests[0]!.query.horizonHours, "6");
  t.is(points.length, 6);
  t.like(points[0], {
    validFromMs: Date.parse("2024-12-01T06:00:00Z"),
    gPerKwh: 300,
    source: "forecast",
    emissionFactor: "lifecycle",
    isEstimated: false,
  });
  await provider.forecast(q, 200 * HOUR);
  t.is(em.requests[1]!.query.horizonHours, "72");
});

test("coordinates resolve through /latest with shouldUseFallbackCallerLookup=false", async (t) => {
  const { em, provider } = await setup(t, {
    locations: [{ lat: 41.88, lon: -87.63, zone: ZONE }],
    callerZone: "DE",
    series: { [ZONE]: recordedHistory(), DE: hourlySeries("DE", RECORDED_NOW - 3 * HOUR, 3) },
  });
  const resolved = await provider.resolve({ lat: 41.9, lon: -87.6 });
  t.is(resolved.zone, ZONE);
  t.deepEqual(resolved.coordinates, { lat: 41.9, lon: -87.6 });
  t.like(em.requests[0], {
    path: "/carbon-intensity/latest",
    query: { lat: "41.9", lon: "-87.6", shouldUseFallbackCallerLookup: "false" },
  });
  t.is(em.requests[0]!.headers["auth-token"], FAKE_EM_TOKEN);
  // In the middle of the Atlantic: no zone; without the flag the fake (like the API) answers the caller's zone.
  await rejects(t, provider.resolve({ lat: 30, lon: -40 }), Code.NotFound);
  await rejects(t, provider.resolve({ lat: 91, lon: 0 }), Code.InvalidArgument);
  t.is(em.requests.length, 2);
  const unflagged = await getJson(`${em.url}/carbon-intensity/latest?lat=30&lon=-40`, {
    provider: "test",
    headers: { "auth-token": FAKE_EM_TOKEN },
    codeFromHttpStatus: () => undefined,
  });
  t.is((unflagged as { zone: string }).zone, "DE");
});

test("without an API token the provider says why and makes no request", async (t) => {
  const { em, provider } = await setup(t, {}, null);
  t.is(provider.unconfiguredReason, "ELECTRICITYMAPS_API_TOKEN is not set");
  t.is(provider.name, "electricitymaps");
  t.is(provider.signal, "average");
  t.true(provider.covers("DE"));
  await rejects(t, provider.current(q), Code.FailedPrecondition);
  t.is(em.requests.length, 0);
  const { provider: configured } = await setup(t);
  t.is(configured.unconfiguredReason, undefined);
});
