/**
 * The interface every carbon-intensity provider implements, one file each (electricitymaps.ts,
 * watttime.ts, uk-grid.ts, static.ts, offline.ts). Providers speak in zones; failures are AppErrors with
 * a code from the closed set (UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, INVALID_ARGUMENT,
 * RESOURCE_EXHAUSTED, UNAVAILABLE) and messages that never contain credentials.
 */
import type { Coordinates } from "../../shared/geo.js";
import type { EmissionFactor, Point, Signal } from "../core/point.js";

export type { Coordinates };

export interface Query {
  zone: string;
  emissionFactor: EmissionFactor;
  allowEstimated: boolean;
}

export interface ResolvedZone {
  zone: string;
  coordinates?: Coordinates;
  detail?: string;
}

export interface Provider {
  /** "electricitymaps", "watttime", "ukgrid", "static", "offline". */
  readonly name: string;
  readonly signal: Signal;
  /** The only emission factor the provider's values have, whatever is asked (UK grid: direct). */
  readonly fixedEmissionFactor?: EmissionFactor;
  /** Whether the provider can be used with the current configuration, and why not. */
  readonly unconfiguredReason: string | undefined;
  /** Whether the provider has data for a zone (without asking upstream). */
  covers(zone: string): boolean;
  /** Maps coordinates to the provider's zone; undefined when the provider cannot. */
  resolve?(coordinates: Coordinates): Promise<ResolvedZone>;
  /** The value for the period containing now. */
  current(q: Query): Promise<Point>;
  /** Values whose periods overlap [fromMs, toMs), oldest first. */
  range(q: Query, fromMs: number, toMs: number): Promise<Point[]>;
  /** Forecast values from now to now + horizonMs, oldest first; undefined when the provider has none. */
  forecast?(q: Query, horizonMs: number): Promise<Point[]>;
}
