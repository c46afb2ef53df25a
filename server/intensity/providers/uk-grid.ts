/**
 * The UK Carbon Intensity API (National Grid ESO, https://api.carbonintensity.org.uk, no key, data CC BY 4.0)
 * for zone "GB": half-hour average intensities, past, current and a 48 h forecast.
 *
 * Emission factor: the API counts the CO2 of generation only (its /intensity/factors give wind, solar and
 * nuclear 0 g/kWh: no upstream, no construction): direct (operational) emissions, so every point says
 * "direct" whatever the query asked for.
 * `actual` is null for periods not yet measured; the forecast then stands in (isEstimated, method
 * UK_NATIONAL_GRID_FORECAST). /intensity/{from}/{to} serves at most 14 days per call and may also
 * return the half hour ending at {from}: answers are clipped to the range asked and deduplicated.
 */
import type { Clock } from "../../shared/clock.js";
import { systemClock } from "../../shared/clock.js";
import { AppError, Code } from "../../shared/errors.js";
import type { Point } from "../core/point.js";
import { getJson, type GetJsonOptions } from "../../shared/net/http.js";
import type { Provider, Query } from "./provider.js";
import { DAY_MS, HALF_HOUR_MS } from "../../shared/units.js";

/** The API's limit for one /intensity/{from}/{to} call. */
export const MAX_RANGE_PER_CALL_MS = 14 * DAY_MS;
const NAME = "ukgrid";
const ZONE = "GB";

export interface UkGridOptions {
  baseUrl: string;
  clock?: Clock;
  /** Overrides for the HTTP client (tests: sleep, timeoutMs, retries). */
  http?: Partial<Pick<GetJsonOptions, "sleep" | "timeoutMs" | "retries" | "signal">>;
}

/** An upstream HTTP status as an error code of carbonmon's closed set (http.ts handles 429 and 5xx itself). */
export function codeFromHttpStatus(status: number): Code {
  if (status === 400 || status === 422) return Code.InvalidArgument;
  if (status === 429) return Code.ResourceExhausted;
  return Code.Unavailable;
}

/** The API's path format: ISO 8601 UTC with minute precision, e.g. 2018-01-20T12:00Z. */
export function isoMinute(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16)}Z`;
}

const floorHalfHour = (ms: number): number => Math.floor(ms / HALF_HOUR_MS) * HALF_HOUR_MS;
const ceilHalfHour = (ms: number): number => Math.ceil(ms / HALF_HOUR_MS) * HALF_HOUR_MS;

/** [fromMs, toMs) cut into consecutive calls of at most 14 days, on half-hour edges. */
export function chunkRange(fromMs: number, toMs: number): Array<{ fromMs: number; toMs: number }> {
  const chunks: Array<{ fromMs: number; toMs: number }> = [];
  if (!(toMs > fromMs)) return chunks;
  const endMs = ceilHalfHour(toMs);
  for (let t = floorHalfHour(fromMs); t < endMs; t += MAX_RANGE_PER_CALL_MS) {
    chunks.push({ fromMs: t, toMs: Math.min(t + MAX_RANGE_PER_CALL_MS, endMs) });
  }
  return chunks;
}

function malformed(why: string): AppError {
  return new AppError(Code.Unavailable, `ukgrid: malformed response (${why})`, {
    hint: "the UK Carbon Intensity API answered unexpectedly; retry later",
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const nullableNumber = (v: unknown): v is number | null => v === null || (typeof v === "number" && Number.isFinite(v));

function parseTimeMs(v: unknown): number {
  const ms = typeof v === "string" ? Date.parse(v) : NaN;
  if (!Number.isFinite(ms)) throw malformed(`bad time ${JSON.stringify(v)}`);
  return ms;
}

/** One entry of `data` as a point; null when it has neither an actual nor a forecast value. */
function toPoint(entry: unknown, nowMs: number): Point | null {
  if (!isObject(entry) || !isObject(entry.intensity)) throw malformed("entry without intensity");
  const validFromMs = parseTimeMs(entry.from);
  const validToMs = parseTimeMs(entry.to);
  const { actual = null, forecast = null } = entry.intensity;
  if (validToMs <= validFromMs || !nullableNumber(actual) || !nullableNumber(forecast)) throw malformed("bad period or intensity");
  const gPerKwh = actual ?? forecast;
  if (gPerKwh === null) return null;
  const isEstimated = actual === null;
  return {
    zone: ZONE,
    gPerKwh,
    validFromMs,
    validToMs,
    isEstimated,
    ...(isEstimated ? { estimationMethod: "UK_NATIONAL_GRID_FORECAST" } : {}),
    provider: NAME,
    signal: "average",
    emissionFactor: "direct",
    source: validFromMs > nowMs ? "forecast" : "live",
    fetchedAtMs: nowMs,
  };
}

/** The points of a response body `{data:[{from,to,intensity:{forecast,actual}}]}`, oldest first. */
export function parsePoints(body: unknown, nowMs: number): Point[] {
  if (!isObject(body) || !Array.isArray(body.data)) throw malformed("no data array");
  return body.data
    .map((e) => toPoint(e, nowMs))
    .filter((p): p is Point => p !== null)
    .sort((a, b) => a.validFromMs - b.validFromMs);
}

export class UkGridProvider implements Provider {
  readonly name = NAME;
  readonly signal = "average" as const;
  readonly fixedEmissionFactor = "direct" as const;
  readonly unconfiguredReason: string | undefined;
  private readonly baseUrl: string;
  private readonly clock: Clock;

  constructor(private readonly options: UkGridOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.clock = options.clock ?? systemClock;
    this.unconfiguredReason = this.baseUrl ? undefined : "no UK Carbon Intensity API URL (CARBONMON_UKGRID_URL)";
  }

  covers(zone: string): boolean {
    return zone === ZONE;
  }

  async current(q: Query): Promise<Point> {
    this.checkZone(q);
    const nowMs = this.clock.nowMs();
    const points = await this.get("/intensity", nowMs);
    const point = points.find((p) => p.validFromMs <= nowMs && nowMs < p.validToMs) ?? points.at(-1);
    if (!point) throw new AppError(Code.Unavailable, "ukgrid: no value for the current half hour");
    if (point.isEstimated && !q.allowEstimated)
      throw new AppError(Code.NotFound, "ukgrid: the current half hour has only a forecast value", { hint: "allow estimated values" });
    return point;
  }

  async range(q: Query, fromMs: number, toMs: number): Promise<Point[]> {
    this.checkZone(q);
    if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) throw new AppError(Code.InvalidArgument, "ukgrid: range bounds must be finite");
    const byStartMs = new Map<number, Point>();
    for (const chunk of chunkRange(fromMs, toMs)) {
      const points = await this.get(`/intensity/${isoMinute(chunk.fromMs)}/${isoMinute(chunk.toMs)}`, this.clock.nowMs());
      for (const p of points) if (p.validToMs > fromMs && p.validFromMs < toMs) byStartMs.set(p.validFromMs, p);
    }
    const points = [...byStartMs.values()].sort((a, b) => a.validFromMs - b.validFromMs);
    return q.allowEstimated ? points : points.filter((p) => !p.isEstimated);
  }

  async forecast(q: Query, horizonMs: number): Promise<Point[]> {
    this.checkZone(q);
    if (!(horizonMs >= 0)) throw new AppError(Code.InvalidArgument, "ukgrid: the forecast horizon must be ≥ 0");
    const nowMs = this.clock.nowMs();
    const points = await this.get(`/intensity/${isoMinute(nowMs)}/fw48h`, nowMs);
    return points.filter((p) => p.validToMs > nowMs && p.validFromMs < nowMs + horizonMs);
  }

  private checkZone(q: Query): void {
    if (!this.covers(q.zone))
      throw new AppError(Code.NotFound, `ukgrid has no data for zone ${q.zone}`, { hint: "the UK Carbon Intensity API covers GB only" });
  }

  private async get(path: string, nowMs: number): Promise<Point[]> {
    const body = await getJson(`${this.baseUrl}${path}`, {
      provider: NAME,
      codeFromHttpStatus,
      hintFromHttpStatus: (status) => (status === 404 ? "check CARBONMON_UKGRID_URL" : undefined),
      ...this.options.http,
    });
    return parsePoints(body, nowMs);
  }
}
