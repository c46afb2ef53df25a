/**
 * The cleanest windows across several prepared series (see best-window.ts for why the candidates suffice):
 * lowest mean first, windows of one series never overlapping one another. Pure.
 */
import { edgeCandidates, windowMean, type EdgeCandidates, type PreparedSeries, type Window, type WindowQuery } from "./best-window.js";

/** A window of the series at index `series` of the input. */
export interface RankedWindow extends Window {
  series: number;
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

/** The first index whose start is >= t (orEqual false), or > t (orEqual true). */
function bound(a: Float64Array, count: number, t: number, orEqual: boolean): number {
  let lo = 0,
    hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! < t || (orEqual && a[mid] === t)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** One series' candidates for a query: a slice of its edge candidates, and the range's own ends. */
interface SeriesQuery {
  s: PreparedSeries;
  c: EdgeCandidates;
  lo: number;
  hi: number;
  ends: Pick[];
}

function seriesQuery(s: PreparedSeries, q: WindowQuery): SeriesQuery {
  const d = q.durationMs;
  const c = edgeCandidates(s, d);
  const ends: Pick[] = [];
  for (const t of [q.fromMs, q.toMs - d]) {
    const mean = windowMean(s, t, d);
    if (mean !== null && !ends.some((e) => e.startMs === t)) ends.push({ startMs: t, integral: mean * d, noise: 0 });
  }
  return { s, c, lo: bound(c.startMs, c.count, q.fromMs, false), hi: bound(c.startMs, c.count, q.toMs - d, true), ends };
}

function overlapsAny(t: number, taken: readonly number[], d: number): boolean {
  for (let k = 0; k < taken.length; k++) if (Math.abs(t - taken[k]!) < d) return true;
  return false;
}

/**
 * The best window of one series inside the query that overlaps none of `taken` (starts), or undefined.
 * Once windows are taken, the edges of what they leave free (p − D and p + D) are candidates too: the
 * smallest integral over each free interval is at one of its kinks or ends.
 */
function bestFree(sq: SeriesQuery, taken: readonly number[], q: WindowQuery): Pick | undefined {
  const { s, c } = sq;
  const d = q.durationMs;
  let bi = -1;
  let bv = Infinity,
    bn = 0;
  for (let i = sq.lo; i < sq.hi; i++) {
    const v = c.integral[i]!;
    if (bi >= 0 && !(v < bv - (s.runNoise[c.run[i]!]! + bn + 1e-12 * Math.abs(bv)))) continue; // ascending starts: a tie keeps the earlier
    if (taken.length > 0 && overlapsAny(c.startMs[i]!, taken, d)) continue;
    bi = i;
    bv = v;
    bn = s.runNoise[c.run[i]!]!;
  }
  let best: Pick | undefined = bi >= 0 ? { startMs: c.startMs[bi]!, integral: bv, noise: bn } : undefined;
  const consider = (pick: Pick): void => {
    if (!overlapsAny(pick.startMs, taken, d) && (best === undefined || better(pick, best))) best = pick;
  };
  for (const e of sq.ends) consider(e);
  for (const p of taken) {
    for (const t of [p - d, p + d]) {
      if (t < q.fromMs || t + d > q.toMs) continue;
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
  if (!(q.durationMs > 0) || !(q.toMs - q.fromMs >= q.durationMs)) return [];
  const queries = series.map((s) => seriesQuery(s, q));
  const taken: number[][] = series.map(() => []);
  const next = queries.map((sq) => bestFree(sq, [], q));
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
    next[pick] = bestFree(queries[pick]!, taken[pick]!, q);
  }
  return ranked;
}
