/**
 * Intensity series as sets of periods: order them, resolve overlaps, find the ranges nothing covers and fill
 * those from a fallback provider. Times are epoch milliseconds, periods half-open [validFromMs, validToMs).
 * Pure: no I/O, no clock.
 */
import type { Point } from "./point.js";

/** A half-open range [startMs, endMs). */
export interface RangeMs {
  startMs: number;
  endMs: number;
}

/** One period of a normalized series, with the input point it was cut from (the same object when uncut). */
export interface Piece {
  point: Point;
  origin: Point;
}

const byStart = (a: Point, b: Point): number => a.validFromMs - b.validFromMs;
const hasLength = (p: Point): boolean => p.validToMs > p.validFromMs; // false for NaN bounds too
const updatedMs = (p: Point): number => p.sourceUpdatedAtMs ?? p.fetchedAtMs;

/** A copy of `point` restricted to [fromMs, toMs), provenance kept; null when nothing of it is left. */
export function clip(point: Point, fromMs: number, toMs: number): Point | null {
  const startMs = Math.max(point.validFromMs, fromMs);
  const endMs = Math.min(point.validToMs, toMs);
  return endMs > startMs ? { ...point, validFromMs: startMs, validToMs: endMs } : null;
}

/**
 * > 0 when `a` is the better value for a period both cover: a non-estimated value beats an estimated one,
 * then the one the provider updated most recently (its updatedAt, else when it was fetched), then the one
 * fetched last.
 */
export function compareQuality(a: Point, b: Point): number {
  if (a.isEstimated !== b.isEstimated) return a.isEstimated ? -1 : 1;
  return updatedMs(a) - updatedMs(b) || a.fetchedAtMs - b.fetchedAtMs;
}

/** The best of the candidates; on a full tie the one given last. */
function best(candidates: readonly Point[]): Point | undefined {
  let winner: Point | undefined;
  for (const p of candidates) if (winner === undefined || compareQuality(p, winner) >= 0) winner = p;
  return winner;
}

function sortedEdgesMs(points: readonly Point[]): number[] {
  const edges = [...new Set(points.flatMap((p) => [p.validFromMs, p.validToMs]))];
  return edges.sort((a, b) => a - b);
}

/**
 * `normalize`, keeping each period's origin. Each elementary interval between two consecutive period
 * edges goes to the best point covering it; consecutive intervals won by the same point merge again, so a
 * point overlapped by nothing better comes back as itself.
 */
export function normalizePieces(points: readonly Point[]): Piece[] {
  const valid = points.filter(hasLength);
  const starting = [...valid].sort(byStart); // stable: ties keep input order, so `best` prefers the later
  const edges = sortedEdgesMs(valid);
  const runs: Array<{ origin: Point; fromMs: number; toMs: number }> = [];
  let active: Point[] = [];
  let next = 0;
  for (let e = 0; e + 1 < edges.length; e++) {
    const fromMs = edges[e]!;
    const toMs = edges[e + 1]!;
    active = active.filter((p) => p.validToMs > fromMs);
    while (next < starting.length && starting[next]!.validFromMs <= fromMs) active.push(starting[next++]!);
    const winner = best(active);
    if (winner === undefined) continue;
    const last = runs[runs.length - 1];
    if (last !== undefined && last.origin === winner && last.toMs === fromMs) last.toMs = toMs;
    else runs.push({ origin: winner, fromMs, toMs });
  }
  return runs.map(({ origin, fromMs, toMs }) => ({
    origin,
    point: fromMs === origin.validFromMs && toMs === origin.validToMs ? origin : clip(origin, fromMs, toMs)!,
  }));
}

/**
 * Sorted by validFromMs, no two periods overlapping, no zero- or negative-length periods. Where points
 * overlap, the better one (see compareQuality) keeps the overlap and the other keeps what is left of its
 * period as clipped copies; two points for the same period leave the better one only.
 */
export function normalize(points: readonly Point[]): Point[] {
  return normalizePieces(points).map((piece) => piece.point);
}

/** The sub-ranges of [fromMs, toMs) that no point covers, oldest first, adjacent ones merged. */
export function gaps(points: readonly Point[], fromMs: number, toMs: number): RangeMs[] {
  const holes: RangeMs[] = [];
  let cursorMs = fromMs;
  for (const p of points.filter(hasLength).sort(byStart)) {
    if (cursorMs >= toMs) break;
    if (p.validToMs <= cursorMs) continue;
    if (p.validFromMs > cursorMs) holes.push({ startMs: cursorMs, endMs: Math.min(p.validFromMs, toMs) });
    cursorMs = p.validToMs;
  }
  if (cursorMs < toMs) holes.push({ startMs: cursorMs, endMs: toMs });
  return holes;
}

/** The ranges sorted, overlapping or touching ones merged; an instant [t, t] survives unless a range holds t. */
export function mergeRanges(ranges: readonly RangeMs[]): RangeMs[] {
  const merged: RangeMs[] = [];
  for (const r of [...ranges].sort((a, b) => a.startMs - b.startMs || a.endMs - b.endMs)) {
    const last = merged[merged.length - 1];
    const joins =
      last !== undefined && (r.startMs < last.endMs || (r.startMs === last.endMs && (r.endMs > r.startMs || last.startMs === last.endMs)));
    if (joins) last.endMs = Math.max(last.endMs, r.endMs);
    else merged.push({ ...r });
  }
  return merged;
}

/**
 * Fills the gaps of `primary` inside [fromMs, toMs) from `fallback`: `filled` holds the fallback points
 * clipped to those gaps (copies with the fallback's provenance), `points` the normalized primary series with
 * them merged in, sorted. Pass `filled` on to computeEmissions to have its periods marked as filled.
 */
export function fillGaps(
  primary: readonly Point[],
  fallback: readonly Point[],
  fromMs: number,
  toMs: number,
): { points: Point[]; filled: Point[] } {
  const candidates = normalize(fallback);
  const filled: Point[] = [];
  let i = 0;
  for (const hole of gaps(primary, fromMs, toMs)) {
    while (i < candidates.length && candidates[i]!.validToMs <= hole.startMs) i++;
    for (let j = i; j < candidates.length && candidates[j]!.validFromMs < hole.endMs; j++) {
      const piece = clip(candidates[j]!, hole.startMs, hole.endMs);
      if (piece !== null) filled.push(piece);
    }
  }
  return { points: [...normalize(primary), ...filled].sort(byStart), filled };
}
