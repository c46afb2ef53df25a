import test from "ava";
import fc from "fast-check";
import type { Point } from "../../../../server/intensity/core/point.js";
import { clip, fillGaps, gaps, mergeRanges, normalize, type RangeMs } from "../../../../server/intensity/core/series.js";

const H = 3_600_000;
const T0 = Date.UTC(2024, 0, 1);

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
const spans = (points: Point[]): Array<[number, number, number]> => points.map((p) => [p.validFromMs, p.validToMs, p.gPerKwh]);
const covered = (points: readonly Point[], tMs: number): boolean => points.some((p) => p.validFromMs <= tMs && tMs < p.validToMs);
const inRanges = (ranges: readonly RangeMs[], tMs: number): boolean => ranges.some((r) => r.startMs <= tMs && tMs < r.endMs);

test("clip keeps provenance, returns a copy and null when nothing is left", (t) => {
  const p = pt(T0, T0 + H, 300, { isEstimated: true, estimationMethod: "TIME_SLICER_AVERAGE", sourceUpdatedAtMs: T0 - 5 });
  t.deepEqual(clip(p, T0 + 600_000, T0 + 2 * H), { ...p, validFromMs: T0 + 600_000 });
  t.not(clip(p, T0 - H, T0 + 2 * H), p);
  t.is(clip(p, T0 + H, T0 + 2 * H), null);
  t.is(clip(p, T0 + 100, T0 + 100), null);
  t.is(p.validFromMs, T0, "the input is not mutated");
});

test("normalize sorts and drops zero- and negative-length periods", (t) => {
  const out = normalize([pt(T0 + H, T0 + 2 * H, 2), pt(T0, T0 + H, 1), pt(T0 + 5, T0 + 5, 9), pt(T0 + 9, T0 + 3, 9)]);
  t.deepEqual(spans(out), [
    [T0, T0 + H, 1],
    [T0 + H, T0 + 2 * H, 2],
  ]);
});

test("normalize returns uncut points as the same objects", (t) => {
  const a = pt(T0, T0 + H, 1);
  const b = pt(T0 + H, T0 + 2 * H, 2);
  const out = normalize([b, a]);
  t.is(out[0], a);
  t.is(out[1], b);
});

const duplicates: Array<[string, Partial<Point>, Partial<Point>]> = [
  [
    "non-estimated beats estimated, even when fetched earlier",
    { isEstimated: false, fetchedAtMs: T0 },
    { isEstimated: true, fetchedAtMs: T0 + H },
  ],
  ["then the most recently updated by the provider", { sourceUpdatedAtMs: T0 + 2 }, { sourceUpdatedAtMs: T0 + 1, fetchedAtMs: T0 + H }],
  ["then the most recently fetched", { fetchedAtMs: T0 + 10 }, { fetchedAtMs: T0 + 9 }],
  ["estimated both: the most recently fetched", { isEstimated: true, fetchedAtMs: T0 + 10 }, { isEstimated: true, fetchedAtMs: T0 }],
];
for (const [name, better, worse] of duplicates) {
  test(`normalize, two points for the same period: ${name}`, (t) => {
    const good = pt(T0, T0 + H, 100, better);
    const bad = pt(T0, T0 + H, 999, worse);
    t.deepEqual(normalize([good, bad]), [good]);
    t.deepEqual(normalize([bad, good]), [good]);
  });
}

test("normalize, overlapping periods: the better one keeps the overlap, the other what is left", (t) => {
  const hourEstimated = pt(T0, T0 + H, 500, { isEstimated: true, provider: "watttime" });
  const fiveMinutes = pt(T0 + 20 * 60_000, T0 + 25 * 60_000, 100);
  const out = normalize([hourEstimated, fiveMinutes]);
  t.deepEqual(spans(out), [
    [T0, T0 + 20 * 60_000, 500],
    [T0 + 20 * 60_000, T0 + 25 * 60_000, 100],
    [T0 + 25 * 60_000, T0 + H, 500],
  ]);
  t.is(out[0]!.provider, "watttime");
  t.true(out[0]!.isEstimated);
});

test("gaps, table", (t) => {
  const day = [pt(T0, T0 + H, 1), pt(T0 + H, T0 + 2 * H, 1), pt(T0 + 3 * H, T0 + 4 * H, 1)];
  const cases: Array<[string, Point[], number, number, Array<[number, number]>]> = [
    ["no points: the whole range", [], T0, T0 + H, [[T0, T0 + H]]],
    ["fully covered", day, T0, T0 + 2 * H, []],
    ["a missing hour in the middle", day, T0, T0 + 4 * H, [[T0 + 2 * H, T0 + 3 * H]]],
    [
      "before, between and after",
      day,
      T0 - H,
      T0 + 5 * H,
      [
        [T0 - H, T0],
        [T0 + 2 * H, T0 + 3 * H],
        [T0 + 4 * H, T0 + 5 * H],
      ],
    ],
    ["a range inside one point", day, T0 + 10, T0 + 20, []],
    ["a range inside the gap", day, T0 + 2 * H + 5, T0 + 2 * H + 9, [[T0 + 2 * H + 5, T0 + 2 * H + 9]]],
    ["an empty range", day, T0 + 2 * H, T0 + 2 * H, []],
    ["unsorted, overlapping input", [day[2]!, pt(T0, T0 + (3 * H) / 2, 1), day[0]!], T0, T0 + 4 * H, [[T0 + (3 * H) / 2, T0 + 3 * H]]],
  ];
  for (const [name, points, fromMs, toMs, want] of cases) {
    t.deepEqual(
      gaps(points, fromMs, toMs).map((g) => [g.startMs, g.endMs]),
      want,
      name,
    );
  }
});

const arbPoints = fc.array(
  fc
    .tuple(
      fc.integer({ min: 0, max: 40 }),
      fc.integer({ min: 1, max: 10 }),
      fc.integer({ min: 1, max: 500 }),
      fc.boolean(),
      fc.integer({ min: 0, max: 3 }),
    )
    .map(([from, len, g, isEstimated, fetched]) => pt(from, from + len, g, { isEstimated, fetchedAtMs: fetched })),
  { maxLength: 12 },
);

test("gaps: an instant is in a gap exactly when no point covers it; gaps are sorted and separated", (t) => {
  fc.assert(
    fc.property(arbPoints, fc.integer({ min: -5, max: 55 }), fc.integer({ min: 0, max: 30 }), (points, fromMs, lenMs) => {
      const holes = gaps(points, fromMs, fromMs + lenMs);
      for (let i = 1; i < holes.length; i++) if (!(holes[i]!.startMs > holes[i - 1]!.endMs)) return false;
      for (let tMs = fromMs; tMs < fromMs + lenMs; tMs++) {
        if (inRanges(holes, tMs + 0.5) === covered(points, tMs + 0.5)) return false;
      }
      return holes.every((h) => h.startMs >= fromMs && h.endMs <= fromMs + lenMs && h.endMs > h.startMs);
    }),
  );
  t.pass();
});

test("normalize: sorted, disjoint, same coverage as the input, the best value everywhere, idempotent", (t) => {
  fc.assert(
    fc.property(arbPoints, (points) => {
      const out = normalize(points);
      for (let i = 1; i < out.length; i++) if (out[i]!.validFromMs < out[i - 1]!.validToMs) return false;
      for (let tMs = -1; tMs < 52; tMs++) {
        const here = points.filter((p) => p.validFromMs <= tMs + 0.5 && tMs + 0.5 < p.validToMs);
        const chosen = out.filter((p) => p.validFromMs <= tMs + 0.5 && tMs + 0.5 < p.validToMs);
        if (chosen.length !== (here.length > 0 ? 1 : 0)) return false;
        const c = chosen[0];
        if (c && here.some((p) => (p.isEstimated ? 0 : 1) > (c.isEstimated ? 0 : 1))) return false;
      }
      return JSON.stringify(normalize(out)) === JSON.stringify(out);
    }),
  );
  t.pass();
});

test("fillGaps: a missing hour is filled from the fallback, clipped to the gap, with the fallback's provenance", (t) => {
  const primary = [pt(T0, T0 + H, 100), pt(T0 + 2 * H, T0 + 3 * H, 300)];
  const annual = pt(T0 - 24 * H, T0 + 24 * H, 380, { provider: "offline", source: "annual_average", isEstimated: true });
  const { points, filled } = fillGaps(primary, [annual], T0, T0 + 3 * H);
  t.deepEqual(filled, [{ ...annual, validFromMs: T0 + H, validToMs: T0 + 2 * H }]);
  t.deepEqual(spans(points), [
    [T0, T0 + H, 100],
    [T0 + H, T0 + 2 * H, 380],
    [T0 + 2 * H, T0 + 3 * H, 300],
  ]);
  t.is(points[1], filled[0]);
  t.deepEqual(gaps(points, T0, T0 + 3 * H), []);
});

test("fillGaps: what the fallback cannot cover stays a gap; nothing outside the range is taken", (t) => {
  const primary = [pt(T0, T0 + H, 100)];
  const fallback = [pt(T0 + H, T0 + H + 30 * 60_000, 200, { provider: "ukgrid" }), pt(T0 + 5 * H, T0 + 6 * H, 250)];
  const { points, filled } = fillGaps(primary, fallback, T0, T0 + 2 * H);
  t.deepEqual(spans(filled), [[T0 + H, T0 + H + 30 * 60_000, 200]]);
  t.deepEqual(gaps(points, T0, T0 + 2 * H), [{ startMs: T0 + H + 30 * 60_000, endMs: T0 + 2 * H }]);
});

test("fillGaps: filled points lie in the primary's gaps only, and cover what the fallback covers there", (t) => {
  fc.assert(
    fc.property(arbPoints, arbPoints, fc.integer({ min: 0, max: 50 }), (primary, fallback, toMs) => {
      const { points, filled } = fillGaps(primary, fallback, 0, toMs);
      for (let tMs = 0; tMs < 52; tMs++) {
        const m = tMs + 0.5;
        const wantFilled = m < toMs && !covered(primary, m) && covered(fallback, m);
        if (covered(filled, m) !== wantFilled) return false;
        if (covered(points, m) !== (covered(primary, m) || wantFilled)) return false;
      }
      return points.every((p, i) => i === 0 || p.validFromMs >= points[i - 1]!.validToMs);
    }),
  );
  t.pass();
});

test("mergeRanges sorts and merges overlapping and touching ranges; an instant stays unless a range holds it", (t) => {
  const r = (startMs: number, endMs: number): RangeMs => ({ startMs, endMs });
  t.deepEqual(mergeRanges([r(5, 8), r(0, 2), r(2, 3), r(6, 7)]), [r(0, 3), r(5, 8)]);
  t.deepEqual(mergeRanges([r(4, 4), r(1, 4), r(4, 4), r(6, 6), r(6, 9), r(7, 7)]), [r(1, 4), r(4, 4), r(6, 9)]);
  t.deepEqual(mergeRanges([]), []);
});
