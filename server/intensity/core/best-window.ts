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
 * cursors over each run and prefix integrals make a series O(periods).
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

/** A window of the series at index `series` of the input. */
export interface RankedWindow extends Window {
  series: number;
}

/**
 * Sorts the periods, drops empty ones and null values, clips a period that starts before the previous one
 * ends (the earlier one keeps the overlap), and cuts the series into gap-free runs.
 */
export function prepareSeries(periods: readonly Period[]): PreparedSeries {
  const kept = periods.filter((p) => p.gPerKwh !== null && Number.isFinite(p.gPerKwh) && p.endMs > p.startMs).sort((a, b) => a.startMs - b.startMs);
  const n = kept.length;
  const startMs = new Float64Array(n), endMs = new Float64Array(n), gPerKwh = new Float64Array(n), prefix = new Float64Array(n);
  const runFirst: number[] = [], runLast: number[] = [], runNoise: number[] = [];
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
  let lo = 0, hi = s.startMs.length - 1, found = -1;
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

/** Every candidate window of one series: starts (ascending within a run) and integrals. */
export interface Candidates {
  startMs: Float64Array;
  integral: Float64Array;
  /** Tie tolerance of each candidate's integral. */
  noise: Float64Array;
  count: number;
}

/** Evaluates every candidate start of every run of `s` that fits a window of the query. O(periods). */
export function candidates(s: PreparedSeries, q: WindowQuery): Candidates {
  const cap = 2 * (s.startMs.length + s.runFirst.length) + 4;
  const out: Candidates = { startMs: new Float64Array(cap), integral: new Float64Array(cap), noise: new Float64Array(cap), count: 0 };
  if (!(q.durationMs > 0) || !(q.toMs - q.fromMs >= q.durationMs)) return out;
  for (let r = 0; r < s.runFirst.length; r++) runCandidates(s, r, q, out);
  return out;
}

function runCandidates(s: PreparedSeries, r: number, q: WindowQuery, out: Candidates): void {
  const first = s.runFirst[r]!, last = s.runLast[r]!;
  const d = q.durationMs;
  const a = Math.max(s.startMs[first]!, q.fromMs);
  const b = Math.min(s.endMs[last]!, q.toMs);
  const lastStart = b - d;
  if (!(lastStart >= a)) return;
  // Edge k of the run: the start of period first + k, and after the last period its end.
  const edge = (k: number): number => (first + k <= last ? s.startMs[first + k]! : s.endMs[last]!);
  const edges = last - first + 2;
  // C(x) for x in the run, with a cursor that only moves forward.
  const cursor = (): ((x: number) => number) => {
    let p = first;
    return (x) => {
      while (p < last && s.endMs[p]! <= x) p++;
      return s.prefix[p]! + s.gPerKwh[p]! * (x - s.startMs[p]!);
    };
  };
  const atStart = cursor(), atEnd = cursor();
  let ka = 0; // next edge for a start on a boundary
  let kb = 0; // next edge for an end on a boundary
  while (ka < edges && edge(ka) <= a) ka++;
  while (kb < edges && edge(kb) - d <= a) kb++;
  let t = a;
  const noise = s.runNoise[r]!;
  for (;;) {
    const i = out.count++;
    out.startMs[i] = t;
    out.integral[i] = atEnd(t + d) - atStart(t);
    out.noise[i] = noise;
    if (t >= lastStart) return;
    const nextA = ka < edges ? edge(ka) : Infinity;
    const nextB = kb < edges ? edge(kb) - d : Infinity;
    t = Math.min(nextA, nextB, lastStart);
    if (nextA === t) ka++;
    if (nextB === t) kb++;
  }
}

/** One candidate window: its start, integral (g/kWh × ms) and tie tolerance. */
interface Pick {
  startMs: number;
  integral: number;
  noise: number;
}

/** Whether a is clearly better than b (integrals closer than their noise are a tie: the earlier start wins). */
function better(a: Pick, b: Pick): boolean {
  const margin = a.noise + b.noise + 1e-12 * Math.abs(b.integral);
  return a.integral < b.integral - margin || (!(b.integral < a.integral - margin) && a.startMs < b.startMs);
}

/**
 * The best window of one series that overlaps none of `taken` (starts), or undefined. Once windows are
 * taken, the edges of what they leave free (p − D and p + D) are candidates too: the smallest integral over
 * each free interval is at one of its kinks or ends.
 */
function bestFree(s: PreparedSeries, c: Candidates, taken: readonly number[], q: WindowQuery): Pick | undefined {
  const d = q.durationMs;
  const free = (t: number): boolean => !taken.some((p) => Math.abs(t - p) < d);
  let best: Pick | undefined;
  const consider = (pick: Pick): void => {
    if (best === undefined || better(pick, best)) best = pick;
  };
  for (let i = 0; i < c.count; i++) {
    if (free(c.startMs[i]!)) consider({ startMs: c.startMs[i]!, integral: c.integral[i]!, noise: c.noise[i]! });
  }
  for (const p of taken) {
    for (const t of [p - d, p + d]) {
      if (t < q.fromMs || t + d > q.toMs || !free(t)) continue;
      const mean = windowMean(s, t, d);
      if (mean !== null) consider({ startMs: t, integral: mean * d, noise: 0 });
    }
  }
  return best;
}

/**
 * Up to `max` windows across the series, lowest mean first (ties: earlier start, then lower series
 * index); windows of the same series never overlap one another. Means are summed directly over the
 * periods each window overlaps (see windowMean).
 */
export function rankWindows(series: readonly PreparedSeries[], q: WindowQuery, max: number): RankedWindow[] {
  const all = series.map((s) => candidates(s, q));
  const taken: number[][] = series.map(() => []);
  const next = series.map((s, j) => bestFree(s, all[j]!, [], q));
  const ranked: RankedWindow[] = [];
  while (ranked.length < max) {
    let pick = -1;
    for (let j = 0; j < next.length; j++) {
      if (next[j] !== undefined && (pick < 0 || better(next[j]!, next[pick]!))) pick = j;
    }
    if (pick < 0) break;
    const { startMs } = next[pick]!;
    ranked.push({ series: pick, startMs, endMs: startMs + q.durationMs, meanGPerKwh: windowMean(series[pick]!, startMs, q.durationMs)! });
    taken[pick]!.push(startMs);
    next[pick] = bestFree(series[pick]!, all[pick]!, taken[pick]!, q);
  }
  return ranked;
}

/** The gap-free runs of a series as [startMs, endMs) ranges, oldest first (for messages). */
export function runsOf(s: PreparedSeries): Array<{ startMs: number; endMs: number }> {
  return Array.from(s.runFirst, (first, r) => ({ startMs: s.startMs[first]!, endMs: s.endMs[s.runLast[r]!]! }));
}
