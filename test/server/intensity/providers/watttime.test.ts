import test, { type ExecutionContext } from "ava";
import type { Query } from "../../../../server/intensity/providers/provider.js";
import { NOWCAST_METHOD, TOKEN_REFRESH_MS, WattTimeProvider } from "../../../../server/intensity/providers/watttime.js";
import { ManualClock } from "../../../../server/shared/clock.js";
import { AppError, Code } from "../../../../server/shared/errors.js";
import {
  FAKE_WT_PASSWORD,
  FAKE_WT_USERNAME,
  startFakeWattTime,
  type FakeWattTime,
  type FakeWattTimeOptions,
} from "../../../helpers/fake-watttime.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const FIVE_MIN = 5 * MINUTE;
const REGION = "CAISO_NORTH";
/** 12:02:30: inside the 5-minute period 12:00–12:05. */
const NOW = Date.parse("2024-11-30T12:02:30Z");
const q: Query = { zone: REGION, emissionFactor: "lifecycle", allowEstimated: true };

interface Setup {
  options?: FakeWattTimeOptions;
  username?: string | undefined;
  password?: string | undefined;
}

async function setup(t: ExecutionContext, s: Setup = {}) {
  const clock = new ManualClock(NOW);
  const wt = await startFakeWattTime({ nowMs: () => clock.nowMs(), ...s.options });
  t.teardown(() => wt.close());
  const sleeps: number[] = [];
  const creds =
    "username" in s || "password" in s
      ? { username: s.username, password: s.password }
      : { username: FAKE_WT_USERNAME, password: FAKE_WT_PASSWORD };
  const provider = new WattTimeProvider({
    baseUrl: `${wt.url}/`,
    ...creds,
    clock,
    http: { sleep: async (ms) => void sleeps.push(ms), timeoutMs: 2000 },
  });
  return { wt, clock, provider, sleeps };
}

const bearerOf = (wt: FakeWattTime, i: number): string | undefined => wt.requests[i]!.headers.authorization;
const paths = (wt: FakeWattTime): string[] => wt.requests.map((r) => r.path);

/** Expects an AppError with the code; neither the password nor any token issued may appear in it. */
async function rejects(t: ExecutionContext, wt: FakeWattTime, p: Promise<unknown>, code: Code, secrets: string[] = []): Promise<AppError> {
  const err = await t.throwsAsync(p, { instanceOf: AppError });
  t.is(err!.code, code, err!.detail);
  for (const secret of [FAKE_WT_PASSWORD, ...wt.tokens, ...secrets]) t.false(err!.detail.includes(secret), `secret in: ${err!.detail}`);
  return err as AppError;
}

test("one login with HTTP Basic; its token is reused by every data call", async (t) => {
  const { wt, provider } = await setup(t);
  await provider.current(q);
  await provider.forecast(q, HOUR);
  await provider.range(q, NOW - HOUR, NOW);
  await provider.resolve({ lat: 37.8, lon: -122.4 });
  t.deepEqual(paths(wt), ["/login", "/v3/forecast", "/v3/forecast", "/v3/historical", "/v3/region-from-loc"]);
  t.is(wt.requests[0]!.headers.authorization, `Basic ${Buffer.from(`${FAKE_WT_USERNAME}:${FAKE_WT_PASSWORD}`).toString("base64")}`);
  t.is(wt.tokens.length, 1);
  for (let i = 1; i < wt.requests.length; i++) t.is(bearerOf(wt, i), `Bearer ${wt.tokens[0]}`);
});

test("the token is replaced after 25 minutes, before its 30 run out", async (t) => {
  const { wt, clock, provider } = await setup(t);
  await provider.current(q);
  clock.advance(24 * MINUTE);
  await provider.current(q);
  t.is(wt.loginCount(), 1);
  clock.advance(2 * MINUTE); // 26 min after the login
  await provider.current(q);
  t.is(wt.loginCount(), 2);
  t.deepEqual(paths(wt), ["/login", "/v3/forecast", "/v3/forecast", "/login", "/v3/forecast"]);
  t.is(bearerOf(wt, 4), `Bearer ${wt.tokens[1]}`);
  t.not(wt.tokens[0], wt.tokens[1]);
  t.is(TOKEN_REFRESH_MS, 25 * MINUTE);
});

test("a token the server expires mid-run costs one re-login, and the call succeeds", async (t) => {
  const { wt, provider } = await setup(t);
  await provider.current(q);
  wt.expireTokens();
  const p = await provider.forecast(q, HOUR);
  t.is(p.length, 12);
  t.deepEqual(paths(wt), ["/login", "/v3/forecast", "/v3/forecast", "/login", "/v3/forecast"]);
  t.is(bearerOf(wt, 2), `Bearer ${wt.tokens[0]}`);
  t.is(bearerOf(wt, 4), `Bearer ${wt.tokens[1]}`);
  await provider.current(q);
  t.is(wt.loginCount(), 2);
});

test("a server whose tokens live only 10 minutes: each 401 triggers one re-login", async (t) => {
  const { wt, clock, provider } = await setup(t, { options: { tokenTtlMs: 10 * MINUTE } });
  for (let i = 0; i < 4; i++) {
    await provider.current(q);
    clock.advance(6 * MINUTE);
  }
  t.is(wt.loginCount(), 2);
  t.deepEqual(paths(wt).slice(0, 5), ["/login", "/v3/forecast", "/v3/forecast", "/v3/forecast", "/login"]);
});

test("wrong credentials are UNAUTHENTICATED with a hint; no retry, no secret in the message", async (t) => {
  const wrong = "not-the-password-41";
  const { wt, provider } = await setup(t, { username: FAKE_WT_USERNAME, password: wrong });
  const err = await rejects(t, wt, provider.current(q), Code.Unauthenticated, [wrong]);
  t.is(err.message, "watttime /login answered HTTP 401: invalid username or password");
  t.is(err.hint, "check WATTTIME_USERNAME / WATTTIME_PASSWORD");
  t.deepEqual(paths(wt), ["/login"]);
  // An upstream that repeats the credentials back: the password is scrubbed.
  wt.setFault("/login", { status: 401, echoCredentials: true });
  const echoed = await rejects(t, wt, provider.current(q), Code.Unauthenticated, [wrong]);
  t.regex(echoed.message, /credentials carbonmon-test:\*\*\* rejected/);
});

test("a data call still 401 after the re-login is UNAUTHENTICATED; tokens never shown", async (t) => {
  const { wt, provider } = await setup(t);
  await provider.current(q);
  wt.setFault("/v3/historical", { status: 401, echoCredentials: true });
  const err = await rejects(t, wt, provider.range(q, NOW - HOUR, NOW), Code.Unauthenticated);
  t.regex(err.message, /^watttime \/v3\/historical answered HTTP 401: rejected: credentials \*\*\* rejected$/);
  t.is(err.hint, "check WATTTIME_USERNAME / WATTTIME_PASSWORD");
  t.deepEqual(paths(wt), ["/login", "/v3/forecast", "/v3/historical", "/login", "/v3/historical"]);
  t.is(wt.tokens.length, 2);
});

test("a region outside the plan is PERMISSION_DENIED; an unknown region INVALID_ARGUMENT", async (t) => {
  const { wt, provider } = await setup(t);
  const denied = await rejects(t, wt, provider.forecast({ ...q, zone: "PJM_DC" }, HOUR), Code.PermissionDenied);
  t.is(denied.message, "watttime /v3/forecast answered HTTP 403: Your account does not have access to region PJM_DC");
  t.is(denied.hint, "free accounts cover CAISO_NORTH only for forecast/historical");
  await rejects(t, wt, provider.range({ ...q, zone: "PJM_DC" }, NOW - HOUR, NOW), Code.PermissionDenied);
  const unknown = await rejects(t, wt, provider.current({ ...q, zone: "NOWHERE_REGION" }), Code.InvalidArgument);
  t.regex(unknown.message, /HTTP 400: Unknown region NOWHERE_REGION/);
  t.is(wt.loginCount(), 1);
  t.is(wt.requests.length, 4);
});

test("lbs/MWh become g/kWh (1000 lbs/MWh = 453.59237 g/kWh) in 5-minute marginal, direct points", async (t) => {
  const { wt, provider } = await setup(t, { options: { value: () => 1000 } });
  const current = await provider.current({ ...q, emissionFactor: "lifecycle" });
  t.true(Math.abs(current.gPerKwh - 453.59237) < 1e-9, String(current.gPerKwh));
  t.deepEqual(
    { ...current, gPerKwh: 0 },
    {
      zone: REGION,
      gPerKwh: 0,
      validFromMs: Date.parse("2024-11-30T12:00:00Z"),
      validToMs: Date.parse("2024-11-30T12:05:00Z"),
      isEstimated: true,
      estimationMethod: NOWCAST_METHOD,
      provider: "watttime",
      signal: "marginal",
      emissionFactor: "direct",
      source: "live",
      fetchedAtMs: NOW,
      sourceUpdatedAtMs: Date.parse("2024-11-30T12:00:00Z"),
    },
  );
  t.like(wt.requests[1], { path: "/v3/forecast", query: { region: REGION, signal_type: "co2_moer", horizon_hours: "0" } });
  const history = await provider.range(q, NOW - HOUR, NOW);
  t.is(history.length, 12);
  for (const p of history) {
    t.is(p.validToMs - p.validFromMs, FIVE_MIN);
    t.like(p, { signal: "marginal", emissionFactor: "direct", source: "live", isEstimated: false, provider: "watttime" });
    t.true(Math.abs(p.gPerKwh - 453.59237) < 1e-9);
  }
  t.is(history[0]!.validFromMs, Date.parse("2024-11-30T11:00:00Z"));
  t.is(history[11]!.validToMs, Date.parse("2024-11-30T12:00:00Z"));
});

test("another unit or an answer for another region is refused, naming it", async (t) => {
  const { wt, provider } = await setup(t);
  wt.setFault("/v3/forecast", { units: "kg_co2_per_mwh", times: 1 });
  const units = await rejects(t, wt, provider.current(q), Code.Unavailable);
  t.is(units.message, "WattTime answered in units kg_co2_per_mwh, expected lbs_co2_per_mwh");
  wt.setFault("/v3/historical", { region: "PJM_DC", times: 1 });
  const region = await rejects(t, wt, provider.range(q, NOW - HOUR, NOW), Code.NotFound);
  t.is(region.message, "WattTime answered for region PJM_DC instead of CAISO_NORTH");
  wt.setFault("/v3/forecast", { malformedJson: true, times: 1 });
  await rejects(t, wt, provider.forecast(q, HOUR), Code.Unavailable);
});

test("data_point_period_seconds sets the length of the points", async (t) => {
  const { wt, provider } = await setup(t);
  wt.setFault("/v3/historical", { periodSeconds: 900 });
  const points = await provider.range(q, NOW - 2 * HOUR, NOW - HOUR);
  t.true(points.length > 0);
  for (const p of points) t.is(p.validToMs - p.validFromMs, 15 * MINUTE);
});

test("a 45-day range is fetched from /v3/historical in 2 calls of at most 30 days, times with a timezone", async (t) => {
  const { wt, provider } = await setup(t);
  const to = Date.parse("2024-11-30T00:00:00Z");
  const from = to - 45 * DAY;
  const points = await provider.range(q, from, to);
  t.is(points.length, 45 * 288);
  t.is(points[0]!.validFromMs, from);
  t.is(points.at(-1)!.validToMs, to);
  for (let i = 1; i < points.length; i++) if (points[i]!.validFromMs !== points[i - 1]!.validToMs) t.fail(`gap at ${i}`);
  const calls = wt.requests.filter((r) => r.path === "/v3/historical");
  t.deepEqual(
    calls.map((r) => [r.query.start, r.query.end]),
    [
      ["2024-10-16T00:00:00.000Z", "2024-11-15T00:00:00.000Z"],
      ["2024-11-15T00:00:00.000Z", "2024-11-30T00:00:00.000Z"],
    ],
  );
  for (const r of calls) t.like(r.query, { region: REGION, signal_type: "co2_moer" });
});

test("a range reaching into the future stops at now; one starting mid-period includes that period", async (t) => {
  const { wt, provider } = await setup(t);
  const points = await provider.range(q, Date.parse("2024-11-30T11:47:00Z"), NOW + HOUR);
  t.deepEqual(
    points.map((p) => new Date(p.validFromMs).toISOString().slice(11, 16)),
    ["11:45", "11:50", "11:55"],
  );
  t.like(wt.requests[1]!.query, { start: "2024-11-30T11:45:00.000Z", end: new Date(NOW).toISOString() });
  t.deepEqual(await provider.range(q, NOW + HOUR, NOW + 2 * HOUR), []);
  t.is(wt.requests.length, 2);
});

test("forecast asks horizon_hours (at most 72) and labels the points forecast", async (t) => {
  const { wt, provider } = await setup(t);
  const points = await provider.forecast(q, 6 * HOUR);
  t.is(wt.requests[1]!.query.horizon_hours, "6");
  t.is(points.length, 72);
  t.like(points[0], {
    validFromMs: Date.parse("2024-11-30T12:00:00Z"),
    source: "forecast",
    isEstimated: false,
    signal: "marginal",
    emissionFactor: "direct",
  });
  const long = await provider.forecast(q, 200 * HOUR);
  t.is(wt.requests[2]!.query.horizon_hours, "72");
  t.is(long.length, 72 * 12);
});

test("coordinates resolve through /v3/region-from-loc; unknown places are INVALID_ARGUMENT", async (t) => {
  const { wt, provider } = await setup(t);
  const resolved = await provider.resolve({ lat: 37.8, lon: -122.3 });
  t.deepEqual(resolved, {
    zone: REGION,
    coordinates: { lat: 37.8, lon: -122.3 },
    detail: "WattTime region CAISO_NORTH (California ISO Northern) at 37.8,-122.3",
  });
  t.like(wt.requests[1], { path: "/v3/region-from-loc", query: { latitude: "37.8", longitude: "-122.3", signal_type: "co2_moer" } });
  const nowhere = await rejects(t, wt, provider.resolve({ lat: 30, lon: -40 }), Code.InvalidArgument);
  t.is(nowhere.message, "watttime /v3/region-from-loc answered HTTP 400: Coordinates not found");
  await rejects(t, wt, provider.resolve({ lat: 95, lon: 0 }), Code.InvalidArgument);
  t.is(wt.requests.length, 3);
});

test("concurrent first calls share one login", async (t) => {
  const { wt, provider } = await setup(t);
  wt.setFault("/login", { delayMs: 100, times: 1 });
  const results = await Promise.all([
    provider.current(q),
    provider.forecast(q, HOUR),
    provider.range(q, NOW - HOUR, NOW),
    provider.current(q),
    provider.resolve({ lat: 38.9, lon: -77 }),
  ]);
  t.is(results.length, 5);
  t.is(wt.loginCount(), 1);
  t.is(wt.tokens.length, 1);
  // Concurrent calls that all meet an expired token also share the one re-login.
  wt.expireTokens();
  wt.setFault("/login", { delayMs: 100, times: 1 });
  await Promise.all([provider.current(q), provider.current(q), provider.forecast(q, HOUR)]);
  t.is(wt.loginCount(), 2);
});

test("429 honours Retry-After; a failed login is not kept", async (t) => {
  const { wt, provider, sleeps } = await setup(t);
  wt.setFault("/login", { status: 500, body: { error: "down" } });
  await rejects(t, wt, provider.current(q), Code.Unavailable);
  t.is(wt.loginCount(), 3);
  wt.setFault("/login", undefined);
  wt.setFault("/v3/forecast", { status: 429, body: { error: "rate limited" }, headers: { "Retry-After": "1" }, times: 1 });
  await provider.current(q);
  t.deepEqual(sleeps.slice(2), [1000]);
  t.is(wt.loginCount(), 4);
});

test("current() refuses when estimates are not allowed: the nowcast is a model estimate", async (t) => {
  const { wt, provider } = await setup(t);
  const err = await rejects(t, wt, provider.current({ ...q, allowEstimated: false }), Code.NotFound);
  t.is(err.hint, "allow estimated values");
  t.is(wt.requests.length, 0);
});

test("without credentials the provider says why and makes no request; covers() knows region names", async (t) => {
  const { wt, provider } = await setup(t, { username: FAKE_WT_USERNAME, password: undefined });
  t.is(provider.unconfiguredReason, "WATTTIME_USERNAME and WATTTIME_PASSWORD are not set");
  t.like(provider, { name: "watttime", signal: "marginal", fixedEmissionFactor: "direct" });
  const err = await rejects(t, wt, provider.current(q), Code.FailedPrecondition);
  t.is(err.message, "WATTTIME_USERNAME and WATTTIME_PASSWORD are not set");
  t.is(wt.requests.length, 0);
  for (const zone of ["CAISO_NORTH", "PJM_DC", "ERCOT_EASTTX", "MISO_INDIANAPOLIS", "PACE", "TVA"]) t.true(provider.covers(zone), zone);
  for (const zone of ["DE", "GB", "US-CAL-CISO", "caiso_north", "CAISO_", "_X", "CAISO"]) t.false(provider.covers(zone), zone);
  const { provider: configured } = await setup(t);
  t.is(configured.unconfiguredReason, undefined);
});
