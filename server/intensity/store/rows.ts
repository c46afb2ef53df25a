/** Points as table rows and back, the same for both stores (booleans as 0/1, optional fields as NULL). */
import type { EmissionFactor, Point, Signal, Source } from "../core/point.js";

export interface PointRow {
  provider: string;
  zone: string;
  emission_factor: EmissionFactor;
  valid_from_ms: number;
  valid_to_ms: number;
  g_per_kwh: number;
  is_estimated: number;
  estimation_method: string | null;
  signal: Signal;
  source: Source;
  fetched_at_ms: number;
  source_updated_at_ms: number | null;
}

/** Column order of the points table, as both stores insert it. */
export const POINT_COLUMNS = [
  "provider",
  "zone",
  "emission_factor",
  "valid_from_ms",
  "valid_to_ms",
  "g_per_kwh",
  "is_estimated",
  "estimation_method",
  "signal",
  "source",
  "fetched_at_ms",
  "source_updated_at_ms",
] as const satisfies ReadonlyArray<keyof PointRow>;

export function toRow(p: Point): PointRow {
  return {
    provider: p.provider,
    zone: p.zone,
    emission_factor: p.emissionFactor,
    valid_from_ms: p.validFromMs,
    valid_to_ms: p.validToMs,
    g_per_kwh: p.gPerKwh,
    is_estimated: p.isEstimated ? 1 : 0,
    estimation_method: p.estimationMethod ?? null,
    signal: p.signal,
    source: p.source,
    fetched_at_ms: p.fetchedAtMs,
    source_updated_at_ms: p.sourceUpdatedAtMs ?? null,
  };
}

/** PostgreSQL returns BIGINT as text: every number column goes through Number(). */
export function toPoint(r: PointRow): Point {
  const updated = r.source_updated_at_ms;
  return {
    zone: r.zone,
    gPerKwh: Number(r.g_per_kwh),
    validFromMs: Number(r.valid_from_ms),
    validToMs: Number(r.valid_to_ms),
    isEstimated: Number(r.is_estimated) === 1,
    ...(r.estimation_method ? { estimationMethod: r.estimation_method } : {}),
    provider: r.provider,
    signal: r.signal,
    emissionFactor: r.emission_factor,
    source: r.source,
    fetchedAtMs: Number(r.fetched_at_ms),
    ...(updated !== null ? { sourceUpdatedAtMs: Number(updated) } : {}),
  };
}

/** Forecasts are not kept: only what happened (live, annual, configured) answers history. */
export const kept = (points: readonly Point[]): Point[] => points.filter((p) => p.source !== "forecast");

/** Refill of a token bucket, the same arithmetic in both stores' SQL and here (for reading). */
export function refilled(tokens: number, refilledAtMs: number, nowMs: number, capacity: number, windowMs: number): number {
  return Math.min(capacity, tokens + (Math.max(0, nowMs - refilledAtMs) / windowMs) * capacity);
}
