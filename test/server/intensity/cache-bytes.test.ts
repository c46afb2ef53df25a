/**
 * The answer cache's byte budget: least recently used out, an answer larger than the budget served but
 * not kept, an estimate near the answer's real size. Driven by a ManualClock (no time passes).
 */
import test from "ava";
import { TtlCache } from "../../../server/intensity/cache.js";
import { estimateBytes } from "../../../server/intensity/size-estimate.js";
import { ManualClock } from "../../../server/shared/clock.js";

const HOUR_MS = 3_600_000;

/** A history-like answer: `n` points shaped as the service's (zone, provider, times, flags). */
function historyAnswer(zone: string, n: number) {
  const fromMs = Date.UTC(2024, 0, 1);
  const points = Array.from({ length: n }, (_, i) => ({
    zone,
    gPerKwh: 100 + i + 0.25,
    validFromMs: fromMs + i * HOUR_MS,
    validToMs: fromMs + (i + 1) * HOUR_MS,
    isEstimated: i % 3 === 0,
    provider: "electricitymaps",
    signal: "average",
    emissionFactor: "lifecycle",
    source: "live",
    fetchedAtMs: fromMs + n * HOUR_MS + 0.5,
  }));
  return { zone, points, filled: [], attempts: [{ provider: "electricitymaps", code: "OK", message: "" }], gaps: [] };
}

test("many large distinct answers: the kept bytes never exceed the budget, and every answer is served", async (t) => {
  const maxBytes = 1024 * 1024;
  const cache = new TtlCache(new ManualClock(), 10_000, undefined, maxBytes);
  const one = estimateBytes(historyAnswer("DE", 500));
  t.true(one > maxBytes / 20 && one < maxBytes / 2, `one answer ≈ ${one} bytes`);
  for (let i = 0; i < 200; i++) {
    const zone = `Z${i}`;
    const { value, cached } = await cache.get(
      `history|${zone}`,
      async () => historyAnswer(zone, 500),
      () => HOUR_MS,
    );
    t.is(value.zone, zone);
    t.is(value.points.length, 500);
    t.false(cached);
    t.true(cache.bytes <= maxBytes, `after ${i + 1} answers: ${cache.bytes} > ${maxBytes}`);
  }
  t.is(cache.loads, 200);
  t.true(cache.size < 200, "older answers were let go");
  t.true(cache.bytes > maxBytes / 2, "the budget is used, not left empty");
  // The most recent answer is still kept; the first one is gone (asked again, it loads).
  t.true(
    (
      await cache.get(
        "history|Z199",
        async () => historyAnswer("Z199", 500),
        () => HOUR_MS,
      )
    ).cached,
  );
  t.false(
    (
      await cache.get(
        "history|Z0",
        async () => historyAnswer("Z0", 500),
        () => HOUR_MS,
      )
    ).cached,
  );
});

test("least recently used goes first: a small answer used between large ones survives them", async (t) => {
  const maxBytes = 512 * 1024;
  const cache = new TtlCache(new ManualClock(), 10_000, undefined, maxBytes);
  let hotLoads = 0;
  const hot = () =>
    cache.get(
      "current|DE",
      async () => (hotLoads++, { gPerKwh: 321, zone: "DE" }),
      () => HOUR_MS,
    );
  await hot();
  for (let i = 0; i < 100; i++) {
    await cache.get(
      `history|Z${i}`,
      async () => historyAnswer(`Z${i}`, 300),
      () => HOUR_MS,
    );
    t.true((await hot()).cached, `the hot answer was evicted after ${i + 1} large ones`);
  }
  t.is(hotLoads, 1);
  t.true(cache.bytes <= maxBytes);
  // Left alone, it goes like any other once enough newer answers arrive.
  for (let i = 100; i < 200; i++)
    await cache.get(
      `history|Z${i}`,
      async () => historyAnswer(`Z${i}`, 300),
      () => HOUR_MS,
    );
  await hot();
  t.is(hotLoads, 2);
});

test("an answer larger than the whole budget is served, not kept, and pushes nothing out", async (t) => {
  const cache = new TtlCache(new ManualClock(), 10_000, undefined, 64 * 1024);
  await cache.get(
    "small",
    async () => ({ gPerKwh: 1 }),
    () => HOUR_MS,
  );
  const before = cache.bytes;
  let loads = 0;
  const big = () =>
    cache.get(
      "big",
      async () => (loads++, historyAnswer("DE", 2000)),
      () => HOUR_MS,
    );
  t.is((await big()).value.points.length, 2000);
  t.is((await big()).value.points.length, 2000);
  t.is(loads, 2, "not kept: loaded again");
  t.is(cache.tooLarge, 2);
  t.is(cache.bytes, before);
  t.true(
    (
      await cache.get(
        "small",
        async () => ({ gPerKwh: 2 }),
        () => HOUR_MS,
      )
    ).cached,
  );
});

test("an entry replaced or expired and reloaded is counted once", async (t) => {
  const clock = new ManualClock();
  const cache = new TtlCache(clock, 10_000, undefined, 1024 * 1024);
  await cache.get(
    "k",
    async () => historyAnswer("DE", 100),
    () => 1000,
  );
  const once = cache.bytes;
  clock.advance(1001);
  await cache.get(
    "k",
    async () => historyAnswer("DE", 100),
    () => 1000,
  );
  t.is(cache.bytes, once);
  t.is(cache.size, 1);
});

test("the estimate is within a small factor of the answer's JSON length", (t) => {
  const samples: unknown[] = [
    historyAnswer("US-MIDW-MISO", 744),
    historyAnswer("DE", 1),
    { value: historyAnswer("FR", 24).points[0], attempts: [{ provider: "offline", code: "OK", message: "" }] },
    { zone: "DE", points: [], forecast: false, provider: "static", attempts: [], fetchedAtMs: 1.5, issuedAtMs: 2.5 },
    { zone: "GB", coordinates: { lat: 51.5, lon: -0.12 }, note: "x".repeat(10_000) },
  ];
  for (const v of samples) {
    const json = JSON.stringify(v).length;
    const estimate = estimateBytes(v);
    t.true(estimate >= json / 2 && estimate <= json * 2, `estimate ${estimate} vs JSON ${json} bytes`);
  }
});
