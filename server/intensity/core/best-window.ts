/**
 * The cleanest windows of a given duration in piecewise-constant intensity series, exactly. Pure: no I/O,
 * no clock; times are epoch milliseconds, periods half-open [startMs, endMs).
 *
 * Why these candidates suffice: the integral of a window [s, s + D) is C(s + D) − C(s), C the cumulative
 * integral of the series. C is piecewise linear with a kink at every period boundary, so the window's
 * integral is piecewise linear in s, with kinks where s or s + D meets a boundary. A piecewise linear
 * function on an interval is smallest at a kink or an end: the candidate starts are the boundaries (start
 * edge on one), the boundaries minus D (end edge on one) and the ends of the searchable range. A null value
 * or a hole is a gap: a window never crosses one, so each gap-free run is searched on its own. Two merged
 * cursors over each run and prefix integrals make a series O(periods); the boundary candidates do not
 * depend on the range, so they are kept per series and duration, and a repeated question costs a binary
 * search and a scan. Ranking across series: rank-windows.ts.
 */

export interface Period {
  startMs: number;
  endMs: number;
  /** null: no value (a gap). */
  gPerKwh: number | null;
}

/** A series made ready for window queries: gap-free runs of periods, with prefix integrals per run. */
export interface PreparedSeries {
  readonly startMs: Float64Array;
  readonly endMs: Float64Array;
  readonly gPerKwh: Float64Array;
  /** ∫ from the start of the period's run to the period's start, in g/kWh × ms. */
  readonly prefix: Float64Array;
  /** Per run: index of its first and last period. */
  readonly runFirst: Int32Array;
  readonly runLast: Int32Array;
  /** Per run: how far floating-point sums over it may stray (comparisons closer than this are ties). */
  readonly runNoise: Float64Array;
}

export interface WindowQuery {
  /** The searchable range [fromMs, toMs): windows lie inside it. */
  fromMs: number;
  toMs: number;
  durationMs: number;
}

export interface Window {
  startMs: number;
  endMs: number;
  meanGPerKwh: number;
}

/**
 * Sorts the periods, drops empty ones and null values, clips a period that starts before the previous one
 * ends (the earlier one keeps the overlap), and cuts the series into gap-free runs.
 */
export function prepareSeries(periods: readonly Period[]): PreparedSeries {
  const kept = periods
    .filter((p) => p.gPerKwh !== null && Number.isFinite(p.gPerKwh) && p.endMs > p.startMs)
    .sort((a, b) => a.startMs - b.startMs);
  const n = kept.length;
  const startMs = new Float64Array(n),
    endMs = new Float64Array(n),
    gPerKwh = new Float64Array(n),
    prefix = new Float64Array(n);
  const runFirst: number[] = [],
    runLast: number[] = [],
    runNoise: number[] = [];
  let m = 0;
  let runIntegral = 0;
  for (const p of kept) {
    const from = m > 0 ? Math.max(p.startMs, endMs[m - 1]!) : p.startMs;
    if (from >= p.endMs) continue;
    const joins = m > 0 && from === endMs[m - 1];
    if (!joins) {
      if (m > 0) runNoise.push(noiseOf(runIntegral));
      runFirst.push(m);
      runLast.push(m);
      runIntegral = 0;
    }
    startMs[m] = from;
    endMs[m] = p.endMs;
    gPerKwh[m] = p.gPerKwh!;
    prefix[m] = runIntegral;
    runIntegral += p.gPerKwh! * (p.endMs - from);
    runLast[runLast.length - 1] = m;
    m++;
  }
  if (m > 0) runNoise.push(noiseOf(runIntegral));
  return {
    startMs: startMs.subarray(0, m),
    endMs: endMs.subarray(0, m),
    gPerKwh: gPerKwh.subarray(0, m),
    prefix: prefix.subarray(0, m),
    runFirst: Int32Array.from(runFirst),
    runLast: Int32Array.from(runLast),
    runNoise: Float64Array.from(runNoise),
  };
}

/** Rounding of a prefix difference is bounded by a few ulps of the run's whole integral. */
const noiseOf = (runIntegral: number): number => 16 * Number.EPSILON * Math.abs(runIntegral);

/** The period that holds t (the last one <= t by start), or -1. */
function periodAt(s: PreparedSeries, t: number): number {
  let lo = 0,
    hi = s.startMs.length - 1,
    found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (s.startMs[mid]! <= t) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/**
 * The exact mean over [startMs, startMs + durationMs), each period weighted by its overlap; null when the
 * window is not covered from end to end (a gap, or beyond the series). Sums the overlaps directly (no
 * prefix differences), so it is as precise as the inputs.
 */
export function windowMean(s: PreparedSeries, startMs: number, durationMs: number): number | null {
  if (!(durationMs > 0)) return null;
  const endMs = startMs + durationMs;
  let i = periodAt(s, startMs);
  if (i < 0 || s.endMs[i]! <= startMs) return null;
  let integral = 0;
  for (let t = startMs; ; i++) {
    if (t !== startMs && (i >= s.startMs.length || s.startMs[i] !== t)) return null; // a hole before endMs
    const upTo = Math.min(s.endMs[i]!, endMs);
    integral += s.gPerKwh[i]! * (upTo - t);
    if (upTo >= endMs) return integral / durationMs;
    t = upTo;
  }
}

/**
 * The windows of one series with an edge on a period boundary, for one duration: starts ascending (runs
 * in order), their integrals (g/kWh × ms) and runs. They do not depend on the range searched (a range only
 * selects a contiguous slice of them and adds its own two ends), so they are kept per series and duration.
 */
export interface EdgeCandidates {
  startMs: Float64Array;
  integral: Float64Array;
  run: Int32Array;
  count: number;
}

/** Per series, per duration; a few durations each (a repeated question costs a slice and a scan). */
const memo = new WeakMap<PreparedSeries, Map<number, EdgeCandidates>>();
const MEMO_DURATIONS = 8;

export function edgeCandidates(s: PreparedSeries, durationMs: number): EdgeCandidates {
  let byDuration = memo.get(s);
  if (!byDuration) memo.set(s, (byDuration = new Map()));
  let c = byDuration.get(durationMs);
  if (!c) {
    if (byDuration.size >= MEMO_DURATIONS) byDuration.delete(byDuration.keys().next().value!);
    byDuration.set(durationMs, (c = computeEdgeCandidates(s, durationMs)));
  }
  return c;
}

function computeEdgeCandidates(s: PreparedSeries, d: number): EdgeCandidates {
  const cap = 2 * (s.startMs.length + s.runFirst.length);
  const out: EdgeCandidates = { startMs: new Float64Array(cap), integral: new Float64Array(cap), run: new Int32Array(cap), count: 0 };
  if (d > 0) for (let r = 0; r < s.runFirst.length; r++) runEdgeCandidates(s, r, d, out);
  return out;
}

/**
 * One run's starts t in [A, B − D] with t or t + D on a boundary, merged in order from two lists of
 * boundaries (start edge, end edge), each integral C(t + D) − C(t) from two forward-only cursors.
 */
function runEdgeCandidates(s: PreparedSeries, r: number, d: number, out: EdgeCandidates): void {
  const first = s.runFirst[r]!,
    last = s.runLast[r]!;
  const { startMs, endMs, gPerKwh, prefix } = s;
  const runEnd = endMs[last]!;
  const lastStart = runEnd - d;
  if (lastStart < startMs[first]!) return;
  // Boundary k of the run (k = first..last+1): the start of period k, and after the last period the run's end.
  let ka = first; // next boundary for the start edge
  let kb = first; // next boundary for the end edge
  while (kb <= last && startMs[kb]! - d < startMs[first]!) kb++;
  let pa = first,
    pb = first; // periods holding t and t + D
  for (;;) {
    const nextA = ka <= last ? startMs[ka]! : runEnd;
    const nextB = (kb <= last ? startMs[kb]! : runEnd) - d;
    const t = Math.min(nextA, nextB);
    if (t > lastStart) return;
    if (nextA === t) ka++;
    if (nextB === t) kb++;
    const e = t + d;
    while (pa < last && endMs[pa]! <= t) pa++;
    while (pb < last && endMs[pb]! <= e) pb++;
    const i = out.count++;
    out.startMs[i] = t;
    out.integral[i] = prefix[pb]! + gPerKwh[pb]! * (e - startMs[pb]!) - (prefix[pa]! + gPerKwh[pa]! * (t - startMs[pa]!));
    out.run[i] = r;
    if (t === lastStart) return;
  }
}

/** The gap-free runs of a series as [startMs, endMs) ranges, oldest first (for messages). */
export function runsOf(s: PreparedSeries): Array<{ startMs: number; endMs: number }> {
  return Array.from(s.runFirst, (first, r) => ({ startMs: s.startMs[first]!, endMs: s.endMs[s.runLast[r]!]! }));
}
