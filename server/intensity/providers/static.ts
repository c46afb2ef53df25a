/**
 * Operator-configured constant intensities per zone ("DE=350,GB=180.5", CARBONMON_INTENSITY_CONSTANTS): the
 * last resort of a fallback chain, or the whole answer where no live data is wanted. The constant answers
 * as one point per UTC hour, never estimated, source "configured"; its emission factor is taken to be the
 * one the query asks for (the operator chose the number).
 */
import type { Clock } from "../../shared/clock.js";
import { systemClock } from "../../shared/clock.js";
import { ZONE_PATTERN } from "../../shared/config.js";
import { AppError, Code } from "../../shared/errors.js";
import type { Point } from "../core/point.js";
import type { Provider, Query } from "./provider.js";
import { HOUR_MS } from "../../shared/units.js";

/** A range longer than this many hours is refused (about 11 years). */
const MAX_POINTS = 100_000;
const NAME = "static";
const ZONE_RE = ZONE_PATTERN;
const NUMBER_RE = /^\d+(\.\d+)?$/;

function badEntry(entry: string, why: string): AppError {
  return new AppError(Code.InvalidArgument, `bad intensity constant ${JSON.stringify(entry)}: ${why}`, {
    hint: 'write ZONE=gPerKwh pairs separated by commas, e.g. "DE=350,GB=180.5"',
  });
}

/** Parses "DE=350,GB=180.5" into zone → gPerKwh. Blank text or blank entries give nothing; pure. */
export function parseConstants(text: string): Map<string, number> {
  const gPerKwhByZone = new Map<string, number>();
  for (const raw of text.split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const parts = entry.split("=");
    if (parts.length !== 2) throw badEntry(entry, "expected ZONE=gPerKwh");
    const zone = parts[0]!.trim().toUpperCase();
    const value = parts[1]!.trim();
    if (!ZONE_RE.test(zone)) throw badEntry(entry, `${JSON.stringify(zone)} is not a zone like DE or US-MIDW-MISO`);
    if (!NUMBER_RE.test(value)) throw badEntry(entry, `${JSON.stringify(value)} is not a non-negative number of gCO2eq/kWh`);
    if (gPerKwhByZone.has(zone)) throw badEntry(entry, `zone ${zone} is given twice`);
    gPerKwhByZone.set(zone, Number(value));
  }
  return gPerKwhByZone;
}

export interface StaticOptions {
  clock?: Clock;
}

export class StaticProvider implements Provider {
  readonly name = NAME;
  readonly signal = "average" as const;
  readonly unconfiguredReason: string | undefined;
  private readonly gPerKwhByZone: ReadonlyMap<string, number>;
  private readonly clock: Clock;

  constructor(gPerKwhByZone: ReadonlyMap<string, number> | Record<string, number>, options: StaticOptions = {}) {
    this.gPerKwhByZone = gPerKwhByZone instanceof Map ? new Map(gPerKwhByZone) : new Map(Object.entries(gPerKwhByZone));
    this.clock = options.clock ?? systemClock;
    this.unconfiguredReason =
      this.gPerKwhByZone.size === 0 ? "no constant intensities configured (CARBONMON_INTENSITY_CONSTANTS)" : undefined;
  }

  covers(zone: string): boolean {
    return this.gPerKwhByZone.has(zone);
  }

  async current(q: Query): Promise<Point> {
    const gPerKwh = this.constantFor(q.zone);
    const hourStartMs = Math.floor(this.clock.nowMs() / HOUR_MS) * HOUR_MS;
    return this.point(q, gPerKwh, hourStartMs);
  }

  async range(q: Query, fromMs: number, toMs: number): Promise<Point[]> {
    const gPerKwh = this.constantFor(q.zone);
    if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) throw new AppError(Code.InvalidArgument, "static: range bounds must be finite");
    const firstHourMs = Math.floor(fromMs / HOUR_MS) * HOUR_MS;
    if ((toMs - firstHourMs) / HOUR_MS > MAX_POINTS)
      throw new AppError(Code.InvalidArgument, `static: range longer than ${MAX_POINTS} hours`);
    const points: Point[] = [];
    for (let h = firstHourMs; toMs > fromMs && h < toMs; h += HOUR_MS) points.push(this.point(q, gPerKwh, h));
    return points;
  }

  private constantFor(zone: string): number {
    const gPerKwh = this.gPerKwhByZone.get(zone);
    if (gPerKwh === undefined)
      throw new AppError(Code.NotFound, `static: no constant for zone ${zone}`, { hint: "add it to CARBONMON_INTENSITY_CONSTANTS" });
    return gPerKwh;
  }

  private point(q: Query, gPerKwh: number, hourStartMs: number): Point {
    return {
      zone: q.zone,
      gPerKwh,
      validFromMs: hourStartMs,
      validToMs: hourStartMs + HOUR_MS,
      isEstimated: false,
      provider: NAME,
      signal: "average",
      emissionFactor: q.emissionFactor,
      source: "configured",
      fetchedAtMs: this.clock.nowMs(),
    };
  }
}
