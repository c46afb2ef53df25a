/**
 * Grams of CO2eq for energy segments against an intensity series, split exactly at period boundaries:
 * grams = sum over periods of J(segment ∩ period) / 3.6e6 × g/kWh(period), a segment's energy spread
 * uniformly over its duration. One binary search per segment, then a walk over the periods it overlaps.
 * Pure: no I/O, no clock.
 */
import { AppError, Code } from "../../shared/errors.js";
import { carbonG } from "../../shared/units.js";
import type { Point } from "./point.js";
import { mergeRanges, normalizePieces, type Piece, type RangeMs } from "./series.js";

export const MAX_SEGMENTS = 100_000;
/** The longest time one request's segments may span (first start to last end): 31 days. */
export const MAX_SPAN_DAYS = 31;
export const MAX_SPAN_MS = MAX_SPAN_DAYS * 24 * 3_600_000;
/** How many uncovered ranges an error message names before it says "and N more". */
const MAX_LISTED_RANGES = 10;

/** Energy used by one device over [startMs, endMs); startMs == endMs: an instantaneous amount. */
export interface EnergySegment {
  startMs: number;
  endMs: number;
  energyJ: number;
  device: string;
}

export interface EmissionsOptions {
  /** "error": a range without intensity fails; "fill": the caller already filled gaps from fallbacks, and
   * anything still uncovered fails too. */
  gapPolicy: "error" | "fill";
  /** The points fillGaps took from a fallback (its `filled`): their periods are reported as filled. */
  filled?: Iterable<Point>;
}

export interface PeriodEmissions {
  point: Point;
  energyJ: Record<string, number>;
  carbonG: Record<string, number>;
  filled: boolean;
}

export interface EmissionsResult {
  carbonG: Record<string, number>;
  energyJ: Record<string, number>;
  totalCarbonG: number;
  totalEnergyJ: number;
  /** Periods that any segment overlaps, oldest first. */
  periods: PeriodEmissions[];
  /** Ranges of segments without intensity: always empty in a result, since either policy throws on them. */
  uncovered: RangeMs[];
}

type EnergyByPeriod = Array<Map<string, number>>; // sparse: only periods some segment overlaps

const iso = (ms: number): string => (Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : String(ms));
const formatRange = (r: RangeMs): string => (r.startMs === r.endMs ? iso(r.startMs) : `${iso(r.startMs)}/${iso(r.endMs)}`);

function invalidSegment(index: number, why: string): AppError {
  return new AppError(Code.InvalidArgument, `segments[${index}]: ${why}`);
}

export function validateSegments(segments: readonly EnergySegment[]): void {
  if (segments.length > MAX_SEGMENTS) {
    throw new AppError(Code.InvalidArgument, `${segments.length} segments, at most ${MAX_SEGMENTS} allowed`, { hint: "split the request" });
  }
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (!Number.isFinite(s.startMs) || !Number.isFinite(s.endMs)) throw invalidSegment(i, "start and end must be finite times");
    if (s.endMs < s.startMs) throw invalidSegment(i, `end ${iso(s.endMs)} is before start ${iso(s.startMs)}`);
    if (!Number.isFinite(s.energyJ) || s.energyJ < 0) throw invalidSegment(i, `energy_j must be finite and >= 0, got ${s.energyJ}`);
    if (typeof s.device !== "string" || s.device.length === 0) throw invalidSegment(i, "device must not be empty");
  }
}

/**
 * [first start, last end) of valid segments (an instantaneous segment counts 1 ms), or INVALID_ARGUMENT
 * when it spans more than MAX_SPAN_DAYS: checked before anything is fetched. A loop, not Math.min(...x):
 * spreading 100,000 arguments overflows the stack.
 */
export function segmentsSpan(segments: readonly EnergySegment[]): RangeMs {
  let startMs = Infinity;
  let endMs = -Infinity;
  for (const s of segments) {
    if (s.startMs < startMs) startMs = s.startMs;
    const e = s.endMs + (s.endMs === s.startMs ? 1 : 0);
    if (e > endMs) endMs = e;
  }
  if (endMs - startMs > MAX_SPAN_MS) {
    const days = ((endMs - startMs) / (24 * 3_600_000)).toFixed(1);
    throw new AppError(
      Code.InvalidArgument,
      `the segments span ${days} days (${iso(startMs)} to ${iso(endMs)}), at most ${MAX_SPAN_DAYS} days per request`,
      { hint: "split the request into spans of at most 31 days" },
    );
  }
  return { startMs, endMs };
}

/** Index of the first period ending after tMs (periods sorted and disjoint, so their ends ascend). */
function firstEndingAfter(pieces: readonly Piece[], tMs: number): number {
  let lo = 0;
  let hi = pieces.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (pieces[mid]!.point.validToMs > tMs) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function addTo(totals: Map<string, number>, key: string, value: number): void {
  totals.set(key, (totals.get(key) ?? 0) + value);
}

function addEnergy(acc: EnergyByPeriod, period: number, device: string, energyJ: number): void {
  addTo((acc[period] ??= new Map<string, number>()), device, energyJ);
}

/** Spreads one segment's energy over the periods it overlaps; records what no period covers. */
function attribute(seg: EnergySegment, pieces: readonly Piece[], acc: EnergyByPeriod, uncovered: RangeMs[]): void {
  let i = firstEndingAfter(pieces, seg.startMs);
  if (seg.endMs === seg.startMs) {
    if (i < pieces.length && pieces[i]!.point.validFromMs <= seg.startMs) addEnergy(acc, i, seg.device, seg.energyJ);
    else uncovered.push({ startMs: seg.startMs, endMs: seg.endMs });
    return;
  }
  const durationMs = seg.endMs - seg.startMs;
  let cursorMs = seg.startMs;
  let assignedJ = 0;
  for (; i < pieces.length && pieces[i]!.point.validFromMs < seg.endMs; i++) {
    const p = pieces[i]!.point;
    if (p.validFromMs > cursorMs) uncovered.push({ startMs: cursorMs, endMs: p.validFromMs });
    const fromMs = Math.max(p.validFromMs, cursorMs);
    const toMs = Math.min(p.validToMs, seg.endMs);
    // The piece reaching the segment's end takes the remainder, so the pieces sum to the segment's energy.
    const shareJ = toMs === seg.endMs ? Math.max(0, seg.energyJ - assignedJ) : seg.energyJ * ((toMs - fromMs) / durationMs);
    addEnergy(acc, i, seg.device, shareJ);
    assignedJ += shareJ;
    cursorMs = toMs;
  }
  if (cursorMs < seg.endMs) uncovered.push({ startMs: cursorMs, endMs: seg.endMs });
}

function uncoveredError(ranges: RangeMs[], policy: EmissionsOptions["gapPolicy"]): AppError {
  const listed = ranges.slice(0, MAX_LISTED_RANGES).map(formatRange).join(", ");
  const more = ranges.length > MAX_LISTED_RANGES ? ` and ${ranges.length - MAX_LISTED_RANGES} more` : "";
  return policy === "error"
    ? new AppError(Code.FailedPrecondition, `no carbon intensity for ${listed}${more}`, {
        hint: "gap_policy FILL fills missing periods from the fallback providers",
      })
    : new AppError(Code.FailedPrecondition, `no carbon intensity for ${listed}${more}, not even from a fallback`, {
        hint: "configure a static intensity or the offline default for this zone",
      });
}

/** A plain record of `m` (faster than Object.fromEntries); a device named "__proto__" stays an own key. */
function toRecord(m: ReadonlyMap<string, number>): Record<string, number> {
  const record: Record<string, number> = {};
  for (const [key, value] of m) {
    if (key === "__proto__") Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
    else record[key] = value;
  }
  return record;
}

function summarize(
  segments: readonly EnergySegment[],
  pieces: readonly Piece[],
  acc: EnergyByPeriod,
  filled: ReadonlySet<Point>,
): EmissionsResult {
  const energyByDevice = new Map<string, number>();
  for (const s of segments) addTo(energyByDevice, s.device, s.energyJ);
  const carbonByDevice = new Map<string, number>();
  const periods: PeriodEmissions[] = [];
  acc.forEach((energyJ, i) => {
    const { point, origin } = pieces[i]!;
    const carbon = new Map<string, number>();
    for (const [device, joules] of energyJ) carbon.set(device, carbonG(joules, point.gPerKwh));
    for (const [device, grams] of carbon) addTo(carbonByDevice, device, grams);
    periods.push({ point, energyJ: toRecord(energyJ), carbonG: toRecord(carbon), filled: filled.has(origin) });
  });
  const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
  return {
    carbonG: toRecord(carbonByDevice),
    energyJ: toRecord(energyByDevice),
    totalCarbonG: sum(carbonByDevice),
    totalEnergyJ: sum(energyByDevice),
    periods,
    uncovered: [],
  };
}

/** Grams per device and per period for `segments` against the intensity `points` (normalized here). */
export function computeEmissions(segments: readonly EnergySegment[], points: readonly Point[], options: EmissionsOptions): EmissionsResult {
  validateSegments(segments);
  const pieces = normalizePieces(points);
  const acc: EnergyByPeriod = [];
  const uncovered: RangeMs[] = [];
  for (const seg of segments) attribute(seg, pieces, acc, uncovered);
  if (uncovered.length > 0) throw uncoveredError(mergeRanges(uncovered), options.gapPolicy);
  return summarize(segments, pieces, acc, new Set(options.filled ?? []));
}
