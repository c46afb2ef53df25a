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
