/**
 * ElectricityMaps v3 (average signal): latest, 24 h history, past-range in ≤ 240 h chunks, forecast, and
 * coordinates → zone. Every request carries the `auth-token` header; every answer's zone is checked
 * against the one asked for (a lat/lon outside every zone otherwise resolves to the caller's IP).
 *
 * Latest, history and past-range may ask for 15- or 5-minute points (`temporalGranularity`). A plan
 * without that granularity answers hourly without saying so, so a period's length is read from the answer:
 * the smallest gap between its points' starts (at most an hour), or the configured granularity for an
 * answer with a single point (for /latest: the hour containing now, where only that one does).
 * A longer gap between two points is missing data, not a longer period.
 */
import { systemClock, type Clock } from "../../shared/clock.js";
import { AppError, Code } from "../../shared/errors.js";
import type { EmissionFactor, Point, Source } from "../core/point.js";
import { getJson, type GetJsonOptions } from "../../shared/net/http.js";
import type { Coordinates, Provider, Query, ResolvedZone } from "./provider.js";
import { HOUR_MS, MINUTE_MS } from "../../shared/units.js";
import { checkCoordinates, codeFromHttpStatus, hintsByStatus, sortUnique } from "./common.js";

export const PAST_RANGE_MAX_HOURS = 240;
export const FORECAST_MAX_HOURS = 72;
const NAME = "electricitymaps";

export type Granularity = "hourly" | "15_minutes" | "5_minutes";
export const GRANULARITY_MS: Readonly<Record<Granularity, number>> = {
  hourly: HOUR_MS,
  "15_minutes": 15 * MINUTE_MS,
  "5_minutes": 5 * MINUTE_MS,
};

export interface ElectricityMapsOptions {
  baseUrl: string;
  apiToken: string | undefined;
  clock?: Clock;
  /** temporalGranularity asked for on latest, history and past-range (default hourly: not sent). */
  granularity?: Granularity;
  /** Overrides for the HTTP client (tests: sleep, timeoutMs, retries). */
  http?: Partial<Pick<GetJsonOptions, "sleep" | "timeoutMs" | "retries" | "signal">>;
}

/** One point as ElectricityMaps answers it (latest, history[], past-range data[], forecast[]). */
interface RawPoint {
  zone?: string;
  carbonIntensity?: number | null;
  datetime?: string;
  updatedAt?: string;
  emissionFactorType?: string;
  isEstimated?: boolean | null;
  estimationMethod?: string | null;
}

type Params = Record<string, string | number | boolean>;

const hintFromHttpStatus = hintsByStatus({
  401: "check ELECTRICITYMAPS_API_TOKEN; the free tier covers one zone: the token may not cover this zone or endpoint",
  403: "the ElectricityMaps plan of this token does not include this endpoint or zone",
});

export class ElectricityMapsProvider implements Provider {
  readonly name = NAME;
  readonly signal = "average" as const;
  readonly unconfiguredReason: string | undefined;
  private readonly baseUrl: string;
  private readonly clock: Clock;
  private readonly granularity: Granularity;

  constructor(private readonly options: ElectricityMapsOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.clock = options.clock ?? systemClock;
    this.granularity = options.granularity ?? "hourly";
    this.unconfiguredReason = options.apiToken ? undefined : "ELECTRICITYMAPS_API_TOKEN is not set";
  }

  /** Any zone: upstream decides (and says 404 when it has none). */
  covers(_zone: string): boolean {
    return true;
  }

  async resolve(c: Coordinates): Promise<ResolvedZone> {
    checkCoordinates(c);
    const body = (await this.get("/carbon-intensity/latest", { lat: c.lat, lon: c.lon, shouldUseFallbackCallerLookup: false })) as RawPoint;
    if (typeof body?.zone !== "string" || body.zone === "")
      throw new AppError(Code.NotFound, `ElectricityMaps has no zone for ${c.lat},${c.lon}`);
    return { zone: body.zone, coordinates: c, detail: `ElectricityMaps zone at ${c.lat},${c.lon}` };
  }

  async current(q: Query): Promise<Point> {
    const raw = (await this.get("/carbon-intensity/latest", this.params(q))) as RawPoint;
    checkZone(q.zone, raw?.zone);
    const at = raw.datetime ?? new Date(this.clock.nowMs()).toISOString();
    if (raw.carbonIntensity == null) throw new AppError(Code.NotFound, `no value for zone ${q.zone} at ${at}`);
    const p = this.toPoint(q, raw, "live", this.latestPeriodMs(Date.parse(raw.datetime ?? ""), this.clock.nowMs()));
    if (p.isEstimated && !q.allowEstimated) throw new AppError(Code.NotFound, `only an estimated value for zone ${q.zone} at ${at}`);
    return p;
  }

  async range(q: Query, fromMs: number, toMs: number): Promise<Point[]> {
    if (!(fromMs < toMs)) return [];
    const now = this.clock.nowMs();
    const answers = fromMs >= now - 24 * HOUR_MS ? [await this.history(q)] : await this.pastRange(q, fromMs, Math.min(toMs, now));
    // A chunk with a single point takes its length from the other chunks of the same range, if any.
    const overallMs = periodMs(answers.flat(), GRANULARITY_MS[this.granularity]);
    const points = answers.flatMap((raws) => {
      const lengthMs = periodMs(raws, overallMs);
      return raws.filter((r) => r.carbonIntensity != null).map((r) => this.toPoint(q, r, "live", lengthMs));
    });
    return sortUnique(points.filter((p) => p.validFromMs < toMs && p.validToMs > fromMs && (q.allowEstimated || !p.isEstimated)));
  }

  async forecast(q: Query, horizonMs: number): Promise<Point[]> {
    const horizonHours = Math.min(Math.max(Math.ceil(horizonMs / HOUR_MS), 1), FORECAST_MAX_HOURS);
    const body = (await this.get("/carbon-intensity/forecast", { zone: q.zone, emissionFactorType: q.emissionFactor, horizonHours })) as {
      zone?: string;
      forecast?: RawPoint[];
      updatedAt?: string;
    };
    checkZone(q.zone, body?.zone);
    const now = this.clock.nowMs();
    const raws = arrayOf(body.forecast, "forecast").filter((r) => r.carbonIntensity != null);
    const points = raws.map((r) => this.toPoint(q, { updatedAt: body.updatedAt, ...r, zone: body.zone }, "forecast", HOUR_MS));
    return sortUnique(points.filter((p) => p.validToMs > now && p.validFromMs < now + horizonMs));
  }

  /**
   * The length of the one period /latest answers: the configured granularity, unless only the hour that
   * starts there contains now (the plan lacks the granularity: the API answered hourly without saying so).
   */
  private latestPeriodMs(validFromMs: number, nowMs: number): number {
    const configuredMs = GRANULARITY_MS[this.granularity];
    const containsNow = (lengthMs: number): boolean => validFromMs <= nowMs && nowMs < validFromMs + lengthMs;
    return !containsNow(configuredMs) && validFromMs % HOUR_MS === 0 && containsNow(HOUR_MS) ? HOUR_MS : configuredMs;
  }

  private async history(q: Query): Promise<RawPoint[]> {
    const body = (await this.get("/carbon-intensity/history", this.params(q))) as { zone?: string; history?: RawPoint[] };
    checkZone(q.zone, body?.zone);
    return arrayOf(body.history, "history");
  }

  /** Hour-aligned chunks of ≤ 240 h, in order: one answer's points per chunk. */
  private async pastRange(q: Query, fromMs: number, toMs: number): Promise<RawPoint[][]> {
    const out: RawPoint[][] = [];
    for (let start = Math.floor(fromMs / HOUR_MS) * HOUR_MS; start < toMs; start += PAST_RANGE_MAX_HOURS * HOUR_MS) {
      const end = Math.min(start + PAST_RANGE_MAX_HOURS * HOUR_MS, toMs);
      const params = { ...this.params(q), start: new Date(start).toISOString(), end: new Date(end).toISOString() };
      const body = (await this.get("/carbon-intensity/past-range", params)) as { zone?: string; data?: RawPoint[] };
      checkZone(q.zone, body?.zone);
      out.push(arrayOf(body.data, "past-range data"));
    }
    return out;
  }

  /** Parameters of latest, history and past-range; temporalGranularity only when not hourly (the API default). */
  private params(q: Query): Params {
    const params: Params = { zone: q.zone, emissionFactorType: q.emissionFactor, disableEstimations: !q.allowEstimated };
    if (this.granularity !== "hourly") params.temporalGranularity = this.granularity;
    return params;
  }

  private get(path: string, params: Params): Promise<unknown> {
    if (!this.options.apiToken)
      throw new AppError(Code.FailedPrecondition, "ELECTRICITYMAPS_API_TOKEN is not set", { hint: "set it to use ElectricityMaps" });
    const query = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]));
    return getJson(`${this.baseUrl}${path}?${query}`, {
      ...this.options.http,
      provider: NAME,
      headers: { "auth-token": this.options.apiToken },
      codeFromHttpStatus,
      hintFromHttpStatus,
    });
  }

  /** The point of period [datetime, datetime + lengthMs). */
  private toPoint(q: Query, r: RawPoint, source: Source, lengthMs: number): Point {
    const validFromMs = Date.parse(r.datetime ?? "");
    if (typeof r.carbonIntensity !== "number" || !Number.isFinite(validFromMs)) throw malformed(`point ${JSON.stringify(r).slice(0, 200)}`);
    const updated = r.updatedAt === undefined ? NaN : Date.parse(r.updatedAt);
    return {
      zone: r.zone ?? q.zone,
      gPerKwh: r.carbonIntensity,
      validFromMs,
      validToMs: validFromMs + lengthMs,
      isEstimated: r.isEstimated === true,
      ...(r.estimationMethod ? { estimationMethod: r.estimationMethod } : {}),
      provider: NAME,
      signal: "average",
      emissionFactor: emissionFactor(r.emissionFactorType) ?? q.emissionFactor,
      source,
      fetchedAtMs: this.clock.nowMs(),
      ...(Number.isFinite(updated) ? { sourceUpdatedAtMs: updated } : {}),
    };
  }
}

/** The zone ElectricityMaps answered for must be the one asked for (zone keys compared case-insensitively). */
function checkZone(asked: string, answered: unknown): void {
  if (typeof answered !== "string") throw malformed("an answer without a zone");
  if (answered.toUpperCase() !== asked.toUpperCase())
    throw new AppError(Code.NotFound, `ElectricityMaps answered for zone ${answered} instead of ${asked}`);
}

function emissionFactor(v: string | undefined): EmissionFactor | undefined {
  return v === "lifecycle" || v === "direct" ? v : undefined;
}

function arrayOf(v: RawPoint[] | undefined, what: string): RawPoint[] {
  if (!Array.isArray(v)) throw malformed(`an answer without ${what}`);
  return v;
}

function malformed(what: string): AppError {
  return new AppError(Code.Unavailable, `ElectricityMaps returned ${what}`);
}

/**
 * The length of the periods of one answer: the smallest positive gap between its points' starts, at most an
 * hour (ElectricityMaps never answers coarser; a longer gap is missing points); `singleMs` when the answer
 * has fewer than two distinct starts. Points without a value count: they still mark where a period starts.
 */
function periodMs(raws: readonly RawPoint[], singleMs: number): number {
  const startsMs = [...new Set(raws.map((r) => Date.parse(r.datetime ?? "")).filter(Number.isFinite))].sort((a, b) => a - b);
  if (startsMs.length < 2) return singleMs;
  let smallestMs = HOUR_MS;
  for (let i = 1; i < startsMs.length; i++) smallestMs = Math.min(smallestMs, startsMs[i]! - startsMs[i - 1]!);
  return smallestMs;
}
