import test from "ava";
import fc from "fast-check";
import { AppError, Code } from "../../../../server/shared/errors.js";
import { computeEmissions, type EnergySegment } from "../../../../server/intensity/core/emissions.js";
import type { Point } from "../../../../server/intensity/core/point.js";
import { fillGaps } from "../../../../server/intensity/core/series.js";

const MIN = 60_000;
const H = 60 * MIN;
const T0 = Date.UTC(2024, 0, 1);
const KWH_J = 3.6e6;

function pt(fromMs: number, toMs: number, gPerKwh: number, extra: Partial<Point> = {}): Point {
  return {
    zone: "DE",
    gPerKwh,
    validFromMs: fromMs,
    validToMs: toMs,
    isEstimated: false,
    provider: "electricitymaps",
    signal: "average",
    emissionFactor: "lifecycle",
    source: "live",
    fetchedAtMs: T0,
    ...extra,
  };
}
/** Consecutive periods of `stepMs` from T0 with the given intensities. */
const series = (stepMs: number, gs: number[]): Point[] => gs.map((g, i) => pt(T0 + i * stepMs, T0 + (i + 1) * stepMs, g));
const seg = (startMs: number, endMs: number, energyJ: number, device = "gpu:0"): EnergySegment => ({ startMs, endMs, energyJ, device });
const ERR = { gapPolicy: "error" } as const;
const close = (a: number, b: number, rel = 1e-9): boolean => Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));

// 1 kWh (3.6e6 J) per segment against periods of 100, 200, 300, 400 g/kWh: grams worked out by hand.
const cases: Array<[string, (g: number) => [number, number], number, number[]]> = [
  ["inside one period", (g) => [g / 4, (3 * g) / 4], 100, [KWH_J]],
  ["across one boundary, half each side", (g) => [g / 2, (3 * g) / 2], (100 + 200) / 2, [KWH_J / 2, KWH_J / 2]],
  ["across two boundaries: 1/4, 1/2, 1/4", (g) => [g / 2, (5 * g) / 2], 25 + 100 + 75, [KWH_J / 4, KWH_J / 2, KWH_J / 4]],
  [
    "across three boundaries: 1/6, 1/3, 1/3, 1/6",
    (g) => [g / 2, (7 * g) / 2],
    (100 + 400 + 600 + 400) / 6,
    [KWH_J / 6, KWH_J / 3, KWH_J / 3, KWH_J / 6],
  ],
  ["exactly one period", (g) => [g, 2 * g], 200, [KWH_J]],
  ["zero-length inside a period", (g) => [g / 2, g / 2], 100, [KWH_J]],
  ["zero-length on a boundary: the period starting there", (g) => [g, g], 200, [KWH_J]],
];
for (const [label, stepMs] of [
  ["hourly", H],
  ["30-minute", 30 * MIN],
  ["5-minute", 5 * MIN],
] as const) {
  for (const [name, span, wantG, wantPeriodsJ] of cases) {
    test(`${label}: ${name}`, (t) => {
      const [a, b] = span(stepMs);
      const r = computeEmissions([seg(T0 + a, T0 + b, KWH_J)], series(stepMs, [100, 200, 300, 400]), ERR);
      t.true(close(r.totalCarbonG, wantG), `${r.totalCarbonG} != ${wantG}`);
      t.true(close(r.carbonG["gpu:0"]!, wantG));
      t.is(r.totalEnergyJ, KWH_J);
      const got = r.periods.map((p) => p.energyJ["gpu:0"]!);
      t.is(got.length, wantPeriodsJ.length);
      got.forEach((j, i) => t.true(close(j, wantPeriodsJ[i]!), `period ${i}: ${j} != ${wantPeriodsJ[i]}`));
      t.true(
        r.periods.every((p, i) => i === 0 || p.point.validFromMs > r.periods[i - 1]!.point.validFromMs),
        "oldest first",
      );
      t.deepEqual(r.uncovered, []);
    });
  }
}

test("several devices are keyed separately and summed into the totals", (t) => {
  const points = series(H, [100, 300]);
  const segments = [
    seg(T0, T0 + 2 * H, 2 * KWH_J, "gpu:0"),
    seg(T0, T0 + H, KWH_J, "gpu:1"),
    seg(T0 + H, T0 + 2 * H, KWH_J / 2, "cpu:0"),
    seg(T0 + H / 2, T0 + H / 2, 0, "dram:0"),
  ];
  const r = computeEmissions(segments, points, ERR);
  t.deepEqual(r.energyJ, { "gpu:0": 2 * KWH_J, "gpu:1": KWH_J, "cpu:0": KWH_J / 2, "dram:0": 0 });
  t.deepEqual(r.carbonG, { "gpu:0": 100 + 300, "gpu:1": 100, "cpu:0": 150, "dram:0": 0 });
  t.is(r.totalCarbonG, 650);
  t.is(r.totalEnergyJ, 3.5 * KWH_J);
  t.deepEqual(r.periods[0]!.carbonG, { "gpu:0": 100, "gpu:1": 100, "dram:0": 0 });
  t.deepEqual(r.periods[1]!.energyJ, { "gpu:0": KWH_J, "cpu:0": KWH_J / 2 });
  t.is(r.periods[1]!.point, points[1]!);
});

test('any device name is a key of its own, "__proto__" included', (t) => {
  const r = computeEmissions([seg(T0, T0 + H, KWH_J, "__proto__"), seg(T0, T0 + H, KWH_J, "constructor")], series(H, [100]), ERR);
  t.deepEqual(Object.keys(r.carbonG), ["__proto__", "constructor"]);
  t.is(Object.getOwnPropertyDescriptor(r.carbonG, "__proto__")?.value, 100);
  t.is(Object.getPrototypeOf(r.periods[0]!.energyJ), Object.prototype);
});

test("a missing period with gap policy ERROR fails with FAILED_PRECONDITION naming the range", (t) => {
  const primary = [pt(T0, T0 + H, 100), pt(T0 + 2 * H, T0 + 3 * H, 300)];
  const err = t.throws(() => computeEmissions([seg(T0, T0 + 3 * H, 3 * KWH_J)], primary, ERR), { instanceOf: AppError });
  t.is(err.code, Code.FailedPrecondition);
  t.regex(err.message, /2024-01-01T01:00:00\.000Z\/2024-01-01T02:00:00\.000Z/);
  t.notRegex(err.message, /T00:00|T02:00:00\.000Z\//);
});

test("the same gap filled from a fallback is covered and reported as filled", (t) => {
  const primary = [pt(T0, T0 + H, 100), pt(T0 + 2 * H, T0 + 3 * H, 300)];
  const annual = pt(T0 - 24 * H, T0 + 24 * H, 400, { provider: "offline", source: "annual_average" });
  const { points, filled } = fillGaps(primary, [annual], T0, T0 + 3 * H);
  const r = computeEmissions([seg(T0, T0 + 3 * H, 3 * KWH_J)], points, { gapPolicy: "fill", filled });
  t.true(close(r.totalCarbonG, 100 + 400 + 300));
  t.deepEqual(
    r.periods.map((p) => [p.filled, p.point.provider, p.point.gPerKwh]),
    [
      [false, "electricitymaps", 100],
      [true, "offline", 400],
      [false, "electricitymaps", 300],
    ],
  );
});

test("with gap policy FILL, a range still uncovered also fails; zero-length segments in gaps are named", (t) => {
  const points = series(H, [100]);
  const err = t.throws(
    () => computeEmissions([seg(T0 + 2 * H, T0 + 2 * H, 5), seg(T0 - H / 2, T0 + H / 2, 5)], points, { gapPolicy: "fill" }),
    { instanceOf: AppError },
  );
  t.is(err.code, Code.FailedPrecondition);
  t.regex(err.message, /2023-12-31T23:30:00\.000Z\/2024-01-01T00:00:00\.000Z, 2024-01-01T02:00:00\.000Z/);
});

test("invalid segments fail with INVALID_ARGUMENT naming the index", (t) => {
  const ok = seg(T0, T0 + H, 1);
  const bad: Array<[string, EnergySegment]> = [
    ["end before start", seg(T0 + 2, T0 + 1, 1)],
    ["negative energy", seg(T0, T0 + H, -1)],
    ["NaN energy", seg(T0, T0 + H, Number.NaN)],
    ["infinite energy", seg(T0, T0 + H, Number.POSITIVE_INFINITY)],
    ["empty device", seg(T0, T0 + H, 1, "")],
    ["NaN start", seg(Number.NaN, T0 + H, 1)],
  ];
  for (const [name, s] of bad) {
    const err = t.throws(() => computeEmissions([ok, s], series(H, [100]), ERR), { instanceOf: AppError }, name);
    t.is(err?.code, Code.InvalidArgument, name);
    t.regex(err?.message ?? "", /segments\[1\]/, name);
  }
});

test("at most 100,000 segments", (t) => {
  const points = series(H, [100]);
  const many = Array.from({ length: 100_000 }, (_, i) => seg(T0 + (i % 3600) * 1000, T0 + (i % 3600) * 1000 + 1000, 1));
  t.is(computeEmissions(many, points, ERR).totalEnergyJ, 100_000);
  const err = t.throws(() => computeEmissions([...many, seg(T0, T0, 1)], points, ERR), { instanceOf: AppError });
  t.is(err.code, Code.InvalidArgument);
});

test("overlapping points are resolved before use: energy is never counted twice", (t) => {
  const points = [
    pt(T0, T0 + H, 500, { isEstimated: true }),
    pt(T0, T0 + H, 100),
    pt(T0 + H / 2, T0 + H, 300, { isEstimated: true, fetchedAtMs: T0 + 1 }),
  ];
  const r = computeEmissions([seg(T0, T0 + H, KWH_J)], points, ERR);
  t.is(r.totalCarbonG, 100);
  t.is(r.periods.length, 1);
});

// Random contiguous series of 1-90 minute periods from T0, and segments inside them (an instant at the
// series' end would be uncovered: the last period excludes its end).
const arbSeries = fc
  .array(fc.tuple(fc.integer({ min: 1, max: 90 }), fc.double({ min: 0, max: 1000, noNaN: true })), { minLength: 1, maxLength: 30 })
  .map((periods) => {
    let fromMs = T0;
    return periods.map(([minutes, g]) => pt(fromMs, (fromMs += minutes * MIN), g));
  });
const arbCase = arbSeries.chain((points) => {
  const endMs = points[points.length - 1]!.validToMs;
  const arbSeg = fc
    .tuple(
      fc.integer({ min: T0, max: endMs - 1 }),
      fc.integer({ min: T0, max: endMs }),
      fc.double({ min: 0, max: 1e9, noNaN: true }),
      fc.constantFrom("gpu:0", "gpu:1", "cpu:0"),
    )
    .map(([a, b, energyJ, device]) => seg(Math.min(a, b), Math.max(a, b), energyJ, device));
  return fc.tuple(fc.constant(points), fc.array(arbSeg, { minLength: 1, maxLength: 20 }));
});

test("property: the energy over periods equals the input energy, per device", (t) => {
  fc.assert(
    fc.property(arbCase, ([points, segments]) => {
      const r = computeEmissions(segments, points, ERR);
      const byDevice = new Map<string, number>();
      for (const s of segments) byDevice.set(s.device, (byDevice.get(s.device) ?? 0) + s.energyJ);
      for (const [device, inputJ] of byDevice) {
        const overPeriodsJ = r.periods.reduce((sum, p) => sum + (p.energyJ[device] ?? 0), 0);
        if (!close(overPeriodsJ, inputJ) || r.energyJ[device] !== inputJ) return false;
      }
      return close(
        r.totalEnergyJ,
        [...byDevice.values()].reduce((a, b) => a + b, 0),
      );
    }),
  );
  t.pass();
});

test("property: grams are linear in energy", (t) => {
  fc.assert(
    fc.property(arbCase, fc.double({ min: 0, max: 1e3, noNaN: true }), ([points, segments], k) => {
      const base = computeEmissions(segments, points, ERR).totalCarbonG;
      const scaled = computeEmissions(
        segments.map((s) => ({ ...s, energyJ: s.energyJ * k })),
        points,
        ERR,
      ).totalCarbonG;
      return close(scaled, base * k);
    }),
  );
  t.pass();
});

test("property: splitting a uniform-power segment at any instant gives the same grams", (t) => {
  fc.assert(
    fc.property(arbCase, fc.double({ min: 0, max: 1, noNaN: true }), ([points, segments], at) => {
      const s = segments[0]!;
      const cutMs = s.startMs + Math.round((s.endMs - s.startMs) * at);
      const firstJ = s.endMs === s.startMs ? s.energyJ : Math.min(s.energyJ, (s.energyJ * (cutMs - s.startMs)) / (s.endMs - s.startMs));
      // A cut at the very end leaves an empty instant, which may lie past the series: leave it out.
      const halves = [seg(s.startMs, cutMs, firstJ), seg(cutMs, s.endMs, s.energyJ - firstJ)].filter(
        (h) => h.endMs > h.startMs || h.energyJ > 0,
      );
      const whole = computeEmissions([s], points, ERR).totalCarbonG;
      const split = computeEmissions(halves, points, ERR).totalCarbonG;
      return close(split, whole);
    }),
  );
  t.pass();
});

test("30 days × 16 devices of hourly segments, offset by half an hour: totals are exact", (t) => {
  const gAt = (hour: number): number => 100 + (hour % 24) * 10;
  const points = series(
    H,
    Array.from({ length: 721 }, (_, h) => gAt(h)),
  );
  const segments: EnergySegment[] = [];
  for (let d = 0; d < 16; d++) {
    for (let h = 0; h < 720; h++) segments.push(seg(T0 + h * H + H / 2, T0 + (h + 1) * H + H / 2, (200 + 10 * d) * 3600, `gpu:${d}`));
  }
  const r = computeEmissions(segments, points, ERR);
  // Each segment is half in hour h and half in hour h+1; g(720) = g(0), so every device sees the hourly sum
  // 30 × Σ(100 + 10k, k < 24) = 154,800 g/kWh·h, at (200 + 10d) W = (200 + 10d)/1000 kWh per hour.
  for (let d = 0; d < 16; d++) {
    t.true(close(r.carbonG[`gpu:${d}`]!, ((200 + 10 * d) / 1000) * 154_800), `gpu:${d}`);
    t.is(r.energyJ[`gpu:${d}`], 720 * (200 + 10 * d) * 3600);
  }
  t.true(close(r.totalCarbonG, 681_120));
  t.is(r.totalEnergyJ, 720 * 4400 * 3600);
  t.is(r.periods.length, 721);
});
