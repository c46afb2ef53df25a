import test from "ava";
import { ManualClock } from "../../../../server/shared/clock.js";
import { AppError, Code } from "../../../../server/shared/errors.js";
import type { Query } from "../../../../server/intensity/providers/provider.js";
import { chunkRange, isoMinute, MAX_RANGE_PER_CALL_MS, UkGridProvider } from "../../../../server/intensity/providers/uk-grid.js";
import { scriptedSeries, startFakeUkGrid, type Fault, type FakeUkGridOptions } from "../../../helpers/fake-ukgrid.js";

const HALF_HOUR_MS = 30 * 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const NOW_MS = Date.parse("2024-11-30T12:10:00Z");
const GB: Query = { zone: "GB", emissionFactor: "lifecycle", allowEstimated: true };

async function setup(t: { teardown(fn: () => unknown): void }, options: FakeUkGridOptions = {}, timeoutMs = 10_000) {
  const clock = new ManualClock(NOW_MS);
  const fake = await startFakeUkGrid({ nowMs: () => clock.nowMs(), ...options });
  t.teardown(() => fake.close());
  const sleeps: number[] = [];
  const sleep = async (ms: number) => void sleeps.push(ms);
  const provider = new UkGridProvider({ baseUrl: `${fake.url}/`, clock, http: { timeoutMs, sleep } });
  return { clock, fake, provider, sleeps };
}

async function setupNoRetry(t: { teardown(fn: () => unknown): void }, timeoutMs: number) {
  const clock = new ManualClock(NOW_MS);
  const fake = await startFakeUkGrid({ nowMs: () => clock.nowMs() });
  t.teardown(() => fake.close());
  const provider = new UkGridProvider({ baseUrl: fake.url, clock, http: { timeoutMs, retries: 0 } });
  return { clock, fake, provider };
}

test("isoMinute writes the API's minute-precision UTC times", (t) => {
  t.is(isoMinute(Date.parse("2018-01-20T12:00:59.999Z")), "2018-01-20T12:00Z");
});

test("chunkRange cuts on half hours into calls of at most 14 days", (t) => {
  const fromMs = Date.parse("2024-11-01T00:10Z");
  const chunks = chunkRange(fromMs, fromMs + 20 * DAY_MS);
  t.is(chunks.length, 2);
  t.is(chunks[0]!.fromMs, Date.parse("2024-11-01T00:00Z"));
  t.is(chunks[0]!.toMs - chunks[0]!.fromMs, MAX_RANGE_PER_CALL_MS);
  t.is(chunks[1]!.toMs, Date.parse("2024-11-21T00:30Z"));
  t.is(chunkRange(fromMs, fromMs).length, 0);
  t.is(chunkRange(Date.parse("2024-11-01T00:00Z"), Date.parse("2024-11-15T00:00Z")).length, 1);
});

test("current: one half-hour point, actual preferred over forecast, direct emissions", async (t) => {
  const { fake, provider } = await setup(t, { series: scriptedSeries({ "2024-11-30T12:00Z": { forecast: 266, actual: 263 } }) });
  const p = await provider.current(GB);
  t.deepEqual(fake.requests, [{ method: "GET", path: "/intensity" }]);
  t.is(p.gPerKwh, 263);
  t.is(p.validFromMs, Date.parse("2024-11-30T12:00Z"));
  t.is(p.validToMs, Date.parse("2024-11-30T12:30Z"));
  t.false(p.isEstimated);
  t.is(p.estimationMethod, undefined);
  t.like(p, { zone: "GB", provider: "ukgrid", signal: "average", emissionFactor: "direct", source: "live", fetchedAtMs: NOW_MS });
});

test("current: the forecast stands in when actual is null, and is refused when estimates are not allowed", async (t) => {
  const { provider } = await setup(t, { series: scriptedSeries({ "2024-11-30T12:00Z": { forecast: 266, actual: null } }) });
  const p = await provider.current(GB);
  t.is(p.gPerKwh, 266);
  t.true(p.isEstimated);
  t.is(p.estimationMethod, "UK_NATIONAL_GRID_FORECAST");
  t.is(p.source, "live");
  const err = await t.throwsAsync(provider.current({ ...GB, allowEstimated: false }), { instanceOf: AppError });
  t.is(err?.code, Code.NotFound);
});

test("range: half-hour points clipped to the range; past live, future forecast", async (t) => {
  const { fake, provider } = await setup(t);
  const fromMs = Date.parse("2024-11-30T11:00Z");
  const points = await provider.range(GB, fromMs, fromMs + 3 * HOUR_MS);
  t.deepEqual(
    fake.requests.map((r) => r.path),
    ["/intensity/2024-11-30T11:00Z/2024-11-30T14:00Z"],
  );
  t.deepEqual(
    points.map((p) => p.validFromMs),
    [0, 1, 2, 3, 4, 5].map((i) => fromMs + i * HALF_HOUR_MS),
  ); // not 10:30, which the API adds
  t.true(points.every((p) => p.validToMs - p.validFromMs === HALF_HOUR_MS));
  t.deepEqual(
    points.map((p) => p.source),
    ["live", "live", "live", "forecast", "forecast", "forecast"],
  );
  t.deepEqual(
    points.map((p) => p.isEstimated),
    [false, false, true, true, true, true],
  );
  t.is(points[0]!.gPerKwh, 200 + 22 - 5); // the fake's actual for 11:00 (half hour 22 of the day)
  t.is(points[5]!.gPerKwh, 200 + 27); // its forecast for 13:30
  const measured = await provider.range({ ...GB, allowEstimated: false }, fromMs, fromMs + 3 * HOUR_MS);
  t.is(measured.length, 2);
});

test("range: 20 days take 2 calls of at most 14 days, without duplicates or holes", async (t) => {
  const { fake, provider } = await setup(t);
  const toMs = Date.parse("2024-11-30T12:00Z");
  const fromMs = toMs - 20 * DAY_MS;
  const points = await provider.range(GB, fromMs, toMs);
  t.is(fake.requests.length, 2);
  for (const r of fake.requests) {
    const [, , from, to] = r.path.split("/");
    t.true(Date.parse(to!) - Date.parse(from!) <= 14 * DAY_MS);
  }
  t.is(points.length, 20 * 48);
  t.true(points.every((p, i) => p.validFromMs === fromMs + i * HALF_HOUR_MS));
  t.true(points.every((p) => !p.isEstimated && p.source === "live"));
});

test("forecast: /fw48h from now, trimmed to the horizon", async (t) => {
  const { fake, provider } = await setup(t);
  const points = await provider.forecast(GB, 2 * HOUR_MS);
  t.deepEqual(
    fake.requests.map((r) => r.path),
    ["/intensity/2024-11-30T12:10Z/fw48h"],
  );
  t.deepEqual(
    points.map((p) => isoMinute(p.validFromMs)),
    ["12:00", "12:30", "13:00", "13:30", "14:00"].map((hm) => `2024-11-30T${hm}Z`),
  );
  t.deepEqual(
    points.map((p) => p.source),
    ["live", "forecast", "forecast", "forecast", "forecast"],
  );
  t.true(points.every((p) => p.isEstimated && p.estimationMethod === "UK_NATIONAL_GRID_FORECAST"));
  t.is((await provider.forecast(GB, 100 * HOUR_MS)).length, 96);
});

test("zones other than GB are not covered", async (t) => {
  const { fake, provider } = await setup(t);
  t.true(provider.covers("GB"));
  t.false(provider.covers("DE"));
  t.false(provider.covers("GB-NIR"));
  const err = await t.throwsAsync(provider.current({ ...GB, zone: "DE" }), { instanceOf: AppError });
  t.is(err?.code, Code.NotFound);
  t.is(fake.requests.length, 0);
});

const faults: Array<[string, Fault, Code]> = [
  ["HTTP 500", { status: 500 }, Code.Unavailable],
  ["HTTP 503", { status: 503 }, Code.Unavailable],
  ["HTTP 400", { status: 400 }, Code.InvalidArgument],
  ["HTTP 429", { status: 429 }, Code.ResourceExhausted],
  ["malformed JSON", { malformed: true }, Code.Unavailable],
  ["no data array", { body: '{"data":"none"}' }, Code.Unavailable],
  ["a bad period", { body: '{"data":[{"from":"soon","to":"later","intensity":{"forecast":1,"actual":null}}]}' }, Code.Unavailable],
  [
    "a non-numeric intensity",
    { body: '{"data":[{"from":"2024-11-30T12:00Z","to":"2024-11-30T12:30Z","intensity":{"forecast":"high","actual":null}}]}' },
    Code.Unavailable,
  ],
];
for (const [what, fault, code] of faults) {
  test(`failures are mapped: ${what} → ${code}`, async (t) => {
    const { fake, provider } = await setup(t);
    fake.setFault(fault);
    for (const call of [
      () => provider.current(GB),
      () => provider.range(GB, NOW_MS - DAY_MS, NOW_MS),
      () => provider.forecast(GB, HOUR_MS),
    ]) {
      const err = await t.throwsAsync(call(), { instanceOf: AppError });
      t.is(err?.code, code);
    }
  });
}

test("a 503 is retried through http.ts", async (t) => {
  const { fake, provider, sleeps } = await setup(t);
  fake.setFault({ status: 503, times: 1 });
  t.truthy(await provider.current(GB));
  t.is(fake.requests.length, 2);
  t.is(sleeps.length, 1);
});

test("failures are mapped: a timeout and a refused connection → UNAVAILABLE", async (t) => {
  // A timeout a normal answer meets even on a busy machine (the next call must succeed), far below the delay.
  const { fake, provider } = await setupNoRetry(t, 1000);
  fake.setFault({ delayMs: 5_000, times: 1 });
  const slow = await t.throwsAsync(provider.current(GB), { instanceOf: AppError });
  t.is(slow?.code, Code.Unavailable);
  t.truthy(await provider.current(GB)); // the fault is over
  await fake.close();
  const refused = await t.throwsAsync(provider.current(GB), { instanceOf: AppError });
  t.is(refused?.code, Code.Unavailable);
});

test("the fake refuses ranges beyond 14 days, as the API does", async (t) => {
  const { fake } = await setup(t);
  const res = await fetch(`${fake.url}/intensity/2024-11-01T00:00Z/2024-11-16T00:00Z`);
  t.is(res.status, 400);
  const ok = await fetch(`${fake.url}/intensity/2024-11-01T00:00Z/2024-11-15T00:00Z`);
  t.is(ok.status, 200);
  t.is(((await ok.json()) as { data: unknown[] }).data.length, 14 * 48 + 1); // with the half hour ending at {from}
});
