import test from "ava";
import fc from "fast-check";
import { edgeCandidates, prepareSeries, windowMean, type Period } from "../../../../server/intensity/core/best-window.js";
import { rankWindows } from "../../../../server/intensity/core/rank-windows.js";

const MIN = 60_000;
const H = 60 * MIN;
const T0 = Date.UTC(2026, 11, 3);

/** Hourly periods from T0 with these values (null: a gap). */
const hourly = (values: Array<number | null>): Period[] =>
  values.map((v, i) => ({ startMs: T0 + i * H, endMs: T0 + (i + 1) * H, gPerKwh: v }));

/** The oracle: the mean over [s, s + d) by summing overlaps with every period; null unless covered end to end. */
function oracleMean(periods: readonly Period[], s: number, d: number): number | null {
  let integral = 0;
  let covered = 0;
  for (const p of periods) {
    if (p.gPerKwh === null) continue;
    const overlap = Math.min(p.endMs, s + d) - Math.max(p.startMs, s);
    if (overlap > 0) {
      integral += p.gPerKwh * overlap;
      covered += overlap;
    }
  }
  return covered === d ? integral / d : null;
}

/** The oracle's best over every start on a grid of `unit` in [from, to - d] overlapping none of `taken`. */
function oracleBest(
  periods: readonly Period[],
  from: number,
  to: number,
  d: number,
  unit: number,
  taken: readonly number[] = [],
): { startMs: number; mean: number } | null {
  let best: { startMs: number; mean: number } | null = null;
  for (let s = from; s + d <= to; s += unit) {
    if (taken.some((p) => Math.abs(p - s) < d)) continue;
    const mean = oracleMean(periods, s, d);
    if (mean !== null && (best === null || mean < best.mean)) best = { startMs: s, mean };
  }
  return best;
}

const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b)) || a === b;

/**
 * A random series on a grid of `unit` ms: periods of 1-12 units (mixed lengths in one series), values in
 * quarter g/kWh from 0 to 1,000, some null, some holes between periods.
 */
const seriesArb = (unit: number) =>
  fc
    .array(
      fc.record({
        lengthUnits: fc.integer({ min: 1, max: 12 }),
        value: fc.option(
          fc.integer({ min: 0, max: 4000 }).map((q) => q / 4),
          { freq: 8 },
        ),
        holeUnits: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 6 }) }),
      }),
      { minLength: 1, maxLength: 30 },
    )
    .map((specs) => {
      const periods: Period[] = [];
      let t = T0;
      for (const s of specs) {
        t += s.holeUnits * unit;
        periods.push({ startMs: t, endMs: t + s.lengthUnits * unit, gPerKwh: s.value });
        t += s.lengthUnits * unit;
      }
      return periods;
    });

const queryArb = (unit: number) =>
  fc
    .record({
      fromUnits: fc.integer({ min: -5, max: 200 }),
      spanUnits: fc.integer({ min: 1, max: 400 }),
      durationUnits: fc.integer({ min: 1, max: 60 }),
    })
    .map((q) => ({
      fromMs: T0 + q.fromUnits * unit,
      toMs: T0 + (q.fromUnits + q.spanUnits) * unit,
      durationMs: q.durationUnits * unit,
    }));

test("property: the best mean agrees with a brute-force search over every start on the grid (1e-9 relative)", (t) => {
  const unit = 5 * MIN;
  fc.assert(
    fc.property(seriesArb(unit), queryArb(unit), (periods, q) => {
      const oracle = oracleBest(periods, q.fromMs, q.toMs, q.durationMs, unit);
      const [best] = rankWindows([prepareSeries(periods)], q, 1);
      if (oracle === null) return best === undefined;
      if (best === undefined || !close(best.meanGPerKwh, oracle.mean)) return false;
      // The window offered is inside the range, gap-free, and its stated mean is its real mean.
      const direct = oracleMean(periods, best.startMs, q.durationMs);
      return best.startMs >= q.fromMs && best.endMs <= q.toMs && direct !== null && close(direct, best.meanGPerKwh);
    }),
    { numRuns: 400 },
  );
  t.pass();
});

test("property: across several series, windows come best first, never overlap within a series, and each mean is exact", (t) => {
  const unit = MIN;
  fc.assert(
    fc.property(
      fc.array(seriesArb(unit), { minLength: 1, maxLength: 4 }),
      queryArb(unit),
      fc.integer({ min: 1, max: 8 }),
      (all, q, max) => {
        const ranked = rankWindows(all.map(prepareSeries), q, max);
        const oracles = all.map((periods) => oracleBest(periods, q.fromMs, q.toMs, q.durationMs, unit));
        const found = oracles.filter((o) => o !== null).map((o) => o!.mean);
        if (found.length === 0) return ranked.length === 0;
        if (ranked.length === 0 || !close(ranked[0]!.meanGPerKwh, Math.min(...found))) return false;
        for (let i = 0; i < ranked.length; i++) {
          const w = ranked[i]!;
          // The i-th is the best window left once the earlier ones are taken (same series: no overlap).
          const left = all.map((periods, k) =>
            oracleBest(
              periods,
              q.fromMs,
              q.toMs,
              q.durationMs,
              unit,
              ranked
                .slice(0, i)
                .filter((o) => o.series === k)
                .map((o) => o.startMs),
            ),
          );
          const bestLeft = Math.min(...left.filter((o) => o !== null).map((o) => o!.mean));
          if (!close(w.meanGPerKwh, bestLeft)) return false;
          const direct = oracleMean(all[w.series]!, w.startMs, q.durationMs);
          if (direct === null || !close(direct, w.meanGPerKwh) || w.startMs < q.fromMs || w.endMs > q.toMs) return false;
          if (i > 0 && w.meanGPerKwh < ranked[i - 1]!.meanGPerKwh * (1 - 1e-9)) return false;
          if (ranked.slice(0, i).some((o) => o.series === w.series && Math.abs(o.startMs - w.startMs) < q.durationMs)) return false;
        }
        return true;
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});

test("a 90-minute job on hourly data: the exact answer starts on a half hour, where whole-point averaging cannot look", (t) => {
  const s = prepareSeries(hourly([300, 120, 180, 90, 400]));
  const [best] = rankWindows([s], { fromMs: T0, toMs: T0 + 5 * H, durationMs: 90 * MIN }, 1);
  t.deepEqual(best, { series: 0, startMs: T0 + 2.5 * H, endMs: T0 + 4 * H, meanGPerKwh: 120 });
  t.is(windowMean(s, T0 + 2 * H, 90 * MIN), 150);
});

test("windows never cross a null point; a range with no gap-free stretch long enough has no candidate", (t) => {
  const s = prepareSeries(hourly([100, null, 50, 60, null, 10]));
  const all = rankWindows([s], { fromMs: T0, toMs: T0 + 6 * H, durationMs: 2 * H }, 5);
  t.deepEqual(
    all.map((w) => [(w.startMs - T0) / H, w.meanGPerKwh]),
    [[2, 55]],
  );
  t.deepEqual(rankWindows([s], { fromMs: T0, toMs: T0 + 6 * H, durationMs: 3 * H }, 5), []);
  t.is(windowMean(s, T0 + 30 * MIN, H), null);
  t.is(windowMean(s, T0 + 5 * H, 2 * H), null, "beyond the series");
});

test("partial periods at the range's ends are weighted by their overlap", (t) => {
  const s = prepareSeries(hourly([10, 100, 100, 20]));
  // The range starts at 00:40 and ends at 03:20: the 10 and the 20 are only partly inside it.
  const [best] = rankWindows([s], { fromMs: T0 + 40 * MIN, toMs: T0 + 3 * H + 20 * MIN, durationMs: H }, 1);
  t.deepEqual([(best!.startMs - T0) / MIN, best!.meanGPerKwh], [40, (20 * 10 + 40 * 100) / 60]);
});

test("a flat series: every start is as good, so the earliest wins and later windows follow without overlap", (t) => {
  const s = prepareSeries([{ startMs: T0, endMs: T0 + 24 * H, gPerKwh: 350.3 }]);
  const ranked = rankWindows([s], { fromMs: T0 + 7 * MIN, toMs: T0 + 24 * H, durationMs: 2 * H }, 3);
  t.deepEqual(
    ranked.map((w) => (w.startMs - T0) / MIN),
    [7, 7 + 120, 7 + 240],
  );
  t.true(ranked.every((w) => w.meanGPerKwh === 350.3));
});

test("ties across series go to the earlier start, then to the first series", (t) => {
  const a = prepareSeries(hourly([null, 50, 50]));
  const b = prepareSeries(hourly([50, 50, 50]));
  const ranked = rankWindows([a, b], { fromMs: T0, toMs: T0 + 3 * H, durationMs: H }, 2);
  t.deepEqual(
    ranked.map((w) => [w.series, (w.startMs - T0) / H]),
    [
      [1, 0],
      [0, 1],
    ],
  );
});

test("edge candidates: one per boundary for each window edge, ascending, O(periods); kept per series and duration", (t) => {
  const s = prepareSeries(hourly(Array.from({ length: 72 }, (_, i) => 100 + (i % 7))));
  const c = edgeCandidates(s, 90 * MIN);
  const starts = Array.from(c.startMs.subarray(0, c.count), (x) => (x - T0) / MIN);
  // Starts on the hours (start edge on a boundary) and on the half hours (end edge on one), within the run.
  t.is(c.count, 71 + 71);
  t.is(starts[0], 0);
  t.is(starts.at(-1), 72 * 60 - 90);
  t.true(
    starts.every((x, i) => i === 0 || x > starts[i - 1]!),
    "ascending, no duplicates",
  );
  t.true(starts.every((x) => x % 60 === 0 || x % 60 === 30));
  t.is(edgeCandidates(s, 90 * MIN), c);
  t.not(edgeCandidates(s, 60 * MIN), c);
});

test("overlapping input periods: the earlier keeps the overlap; empty and non-finite ones are dropped", (t) => {
  const s = prepareSeries([
    { startMs: T0 + H, endMs: T0 + 2 * H, gPerKwh: 20 },
    { startMs: T0, endMs: T0 + 90 * MIN, gPerKwh: 10 },
    { startMs: T0 + 3 * H, endMs: T0 + 3 * H, gPerKwh: 1 },
    { startMs: T0 + 2 * H, endMs: T0 + 3 * H, gPerKwh: Number.NaN },
  ]);
  t.is(windowMean(s, T0, 2 * H), (90 * 10 + 30 * 20) / 120);
  t.is(windowMean(s, T0 + H, 2 * H), null);
});
