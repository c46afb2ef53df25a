/**
 * One carbon-intensity value with its provenance: the domain type every provider returns and every RPC
 * answers from. Times are epoch milliseconds (UTC); intensities grams CO2eq per kWh. Pure.
 */
export type Signal = "average" | "marginal";
/** live: a provider's measured or estimated value; forecast; annual_average: the offline dataset; configured: a constant. */
export type Source = "live" | "forecast" | "annual_average" | "configured";
export type EmissionFactor = "lifecycle" | "direct";

export interface Point {
  zone: string;
  gPerKwh: number;
  /** Start of the period the value applies to (inclusive). */
  validFromMs: number;
  /** End of the period (exclusive). */
  validToMs: number;
  isEstimated: boolean;
  estimationMethod?: string;
  provider: string;
  signal: Signal;
  emissionFactor: EmissionFactor;
  source: Source;
  fetchedAtMs: number;
  sourceUpdatedAtMs?: number;
}

/** A value that may still change: estimated, forecast or a live value for a period not yet over. */
export function isProvisional(p: Point, nowMs: number): boolean {
  return p.isEstimated || p.source === "forecast" || (p.source === "live" && p.validToMs > nowMs);
}

/** No grid's intensity comes near this (lignite is ~1,200 g/kWh): a larger value is a unit or data error. */
export const MAX_G_PER_KWH = 10_000;
/** Times a point may carry: from 1970 to the last instant a protobuf Timestamp can hold (9999-12-31). */
export const MIN_POINT_MS = 0;
export const MAX_POINT_MS = Date.UTC(10_000, 0, 1) - 1;

/**
 * What is wrong with a point from upstream for a question about `zone`, or undefined when it is sound: a
 * non-finite, negative or absurd intensity, another zone, a period that is empty, reversed, not finite or
 * outside what a Timestamp can carry. Pure.
 */
export function pointProblem(p: Point, zone: string): string | undefined {
  if (typeof p.gPerKwh !== "number" || !Number.isFinite(p.gPerKwh) || p.gPerKwh < 0 || p.gPerKwh > MAX_G_PER_KWH)
    return `intensity ${String(p.gPerKwh)} g/kWh is outside 0..${MAX_G_PER_KWH}`;
  if (typeof p.zone !== "string" || p.zone.toUpperCase() !== zone.toUpperCase())
    return `a point for zone ${String(p.zone).slice(0, 40)} instead of ${zone}`;
  const inRange = (ms: number): boolean => Number.isFinite(ms) && ms >= MIN_POINT_MS && ms <= MAX_POINT_MS;
  if (!inRange(p.validFromMs) || !inRange(p.validToMs) || !(p.validFromMs < p.validToMs))
    return `period ${String(p.validFromMs)}..${String(p.validToMs)} (ms) is not a period between 1970 and 9999`;
  if (!inRange(p.fetchedAtMs) || (p.sourceUpdatedAtMs !== undefined && !inRange(p.sourceUpdatedAtMs)))
    return "fetched/updated time outside 1970..9999";
  return undefined;
}
