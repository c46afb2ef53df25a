/**
 * Carbon as the agent's plain data: a window's carbon status, grams per device and the intensity periods
 * behind them, with their provenance as the intensity service reported it. No protobuf here: api/
 * translates from the intensity service's messages (intensity-client.ts) and into Measurement
 * (measurement-codec.ts).
 */
import type { Domain } from "../devices/energy-source.js";

/** disabled: no intensity service; pending: not priced yet; provisional: priced, may be revised; final. */
export type CarbonState = "disabled" | "pending" | "provisional" | "final";

export interface ProviderAttemptInfo {
  provider: string;
  code: string;
  message: string;
}

/** An intensity value and where it came from (mirrors the intensity service's IntensityPoint). */
export interface IntensityInfo {
  zone: string;
  gPerKwh: number;
  validFromMs: number | undefined;
  validToMs: number | undefined;
  isEstimated: boolean;
  estimationMethod: string;
  provider: string;
  /** Enum value names as the contract spells them, e.g. "SIGNAL_TYPE_AVERAGE". */
  signal: string;
  emissionFactor: string;
  source: string;
  fetchedAtMs: number | undefined;
  sourceUpdatedAtMs: number | undefined;
  attempts: ProviderAttemptInfo[];
  cached: boolean;
}

/** The window's energy and grams within one intensity period. */
export interface PricedPeriod {
  intensity: IntensityInfo | undefined;
  energyJ: number;
  carbonG: number;
}

export interface CarbonFigures {
  status: CarbonState;
  /** Why carbon is pending, provisional or disabled. */
  reason: string;
  /** Grams per device name ("gpu:0", "cpu:1", "dram:0"). */
  carbonG: Record<string, number>;
  /** Oldest first. */
  periods: PricedPeriod[];
  totalG: number;
}

/** What one pricing attempt gives a window. */
export interface CarbonOutcome {
  status: Exclude<CarbonState, "disabled">;
  reason: string;
  /** Grams per device name; empty unless final or provisional. */
  carbonG: Record<string, number>;
  periods: PricedPeriod[];
}

const DOMAINS: readonly string[] = ["gpu", "cpu", "dram"] satisfies readonly Domain[];

export function deviceName(domain: Domain, index: number): string {
  return `${domain}:${index}`;
}

/** A window's carbon figures after an outcome: grams per known device, periods, total and status. */
export function applyCarbon(outcome: CarbonOutcome): CarbonFigures {
  const carbonG: Record<string, number> = {};
  let totalG = 0;
  for (const [device, grams] of Object.entries(outcome.carbonG)) {
    const [domain, index] = device.split(":");
    if (!DOMAINS.includes(domain!) || index === undefined || !/^\d+$/.test(index)) continue;
    carbonG[device] = grams;
    totalG += grams;
  }
  return { status: outcome.status, reason: outcome.reason, carbonG, periods: outcome.periods, totalG };
}

/** Carbon figures with only a status and its reason (no grams yet, or none to come). */
export function carbonStatusOnly(status: CarbonState, reason: string): CarbonFigures {
  return { status, reason, carbonG: {}, periods: [], totalG: 0 };
}
