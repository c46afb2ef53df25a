/**
 * WattTime v3, signal co2_moer: the MARGINAL operating emissions rate of a WattTime region (CAISO_NORTH,
 * PJM_DC, …), not an average mix; every point says signal "marginal".
 *
 * Auth: GET {base}/login with HTTP Basic answers a bearer token valid 30 min. The token is kept and
 * replaced once 25 min have passed on the injected clock, and once when a data call answers 401 (that
 * call is then retried once; a second 401 is UNAUTHENTICATED). Concurrent callers share one login in
 * flight. Neither the password nor a token appears in any error: getJson hides header values and answers
 * that echo them are scrubbed here.
 *
 * Values: lbs CO2/MWh → g/kWh (lbsPerMwhToGPerKwh); any other meta.units is UNAVAILABLE, naming the unit.
 * A point lasts meta.data_point_period_seconds (300). MOER counts the combustion of the marginal
 * generator, operational emissions only: every point is "direct" (fixedEmissionFactor) whatever is asked.
 * current(): WattTime has no "latest measured" value; its current value is the first point of the forecast
 * (horizon_hours=0), a model nowcast: source "live", isEstimated, estimationMethod WATTTIME_NOWCAST, and
 * refused (NOT_FOUND) when estimates are not allowed. range(): /v3/historical in ≤ 30-day calls on 5-minute
 * edges, isEstimated false. forecast(): ≤ 72 h, source "forecast", isEstimated false.
 */
import { Buffer } from "node:buffer";
import { systemClock, type Clock } from "../../shared/clock.js";
import { AppError, Code } from "../../shared/errors.js";
import { DAY_MS, HOUR_MS, MINUTE_MS, lbsPerMwhToGPerKwh } from "../../shared/units.js";
import type { Point, Source } from "../core/point.js";
import { getJson, type GetJsonOptions } from "../../shared/net/http.js";
import type { Coordinates, Provider, Query, ResolvedZone } from "./provider.js";
import { checkCoordinates, codeFromHttpStatus, hintsByStatus, sortUnique } from "./common.js";

const PERIOD_MS = 5 * MINUTE_MS;
/** A token lives 30 min upstream; it is replaced after 25. */
export const TOKEN_REFRESH_MS = 25 * MINUTE_MS;
export const HISTORICAL_MAX_DAYS = 30;
export const FORECAST_MAX_HOURS = 72;
export const NOWCAST_METHOD = "WATTTIME_NOWCAST";
const NAME = "watttime";
const SIGNAL_TYPE = "co2_moer";
const UNITS = "lbs_co2_per_mwh";

/**
 * covers(): a WattTime region is uppercase letters/digits in words joined by "_" (CAISO_NORTH, PJM_DC,
 * ERCOT_EASTTX, MISO_INDIANAPOLIS), or one of these single-word balancing authorities. ElectricityMaps
 * zones (US-CAL-CISO, DE) and "GB" never match: they use hyphens or are country codes.
 */
export const SINGLE_WORD_REGIONS: ReadonlySet<string> = new Set([
  "AECI",
  "AZPS",
  "BANC",
  "BPA",
  "DUK",
  "FPC",
  "FPL",
  "IPCO",
  "LDWP",
  "NEVP",
  "PACE",
  "PACW",
  "PNM",
  "PSCO",
  "SOCO",
  "SRP",
  "TVA",
  "WACM",
  "WALC",
]);
const REGION = /^[A-Z0-9]+(?:_[A-Z0-9]+)+$/;

export interface WattTimeOptions {
  /** The API root, e.g. https://api.watttime.org (login at /login, data under /v3). */
  baseUrl: string;
  username: string | undefined;
  password: string | undefined;
  clock?: Clock;
  /** Overrides for the HTTP client (tests: sleep, timeoutMs, retries). */
  http?: Partial<Pick<GetJsonOptions, "sleep" | "timeoutMs" | "retries" | "signal">>;
}

interface RawData {
  data?: Array<{ point_time?: string; value?: number | null }>;
  meta?: { units?: unknown; data_point_period_seconds?: unknown; region?: unknown; generated_at?: string };
}

type Params = Record<string, string | number>;

const hintFromHttpStatus = hintsByStatus({
  401: "check WATTTIME_USERNAME / WATTTIME_PASSWORD",
  403: "free accounts cover CAISO_NORTH only for forecast/historical",
});

export class WattTimeProvider implements Provider {
  readonly name = NAME;
  readonly signal = "marginal" as const;
  readonly fixedEmissionFactor = "direct" as const;
  readonly unconfiguredReason: string | undefined;
  private readonly baseUrl: string;
  private readonly clock: Clock;
  private token: { value: string; atMs: number } | undefined;
  private login: Promise<string> | undefined;

  constructor(private readonly options: WattTimeOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.clock = options.clock ?? systemClock;
    this.unconfiguredReason = options.username && options.password ? undefined : "WATTTIME_USERNAME and WATTTIME_PASSWORD are not set";
  }

  covers(zone: string): boolean {
    return REGION.test(zone) || SINGLE_WORD_REGIONS.has(zone);
  }

  async resolve(c: Coordinates): Promise<ResolvedZone> {
    checkCoordinates(c);
    const body = (await this.get("/v3/region-from-loc", { latitude: c.lat, longitude: c.lon, signal_type: SIGNAL_TYPE })) as {
      region?: unknown;
      region_full_name?: unknown;
    };
    if (typeof body?.region !== "string" || body.region === "") throw malformed("a region-from-loc answer without a region");
    const full = typeof body.region_full_name === "string" ? ` (${body.region_full_name})` : "";
    return { zone: body.region, coordinates: c, detail: `WattTime region ${body.region}${full} at ${c.lat},${c.lon}` };
  }

  async current(q: Query): Promise<Point> {
    if (!q.allowEstimated)
      throw new AppError(Code.NotFound, `watttime: the current value for region ${q.zone} is a nowcast (a model estimate)`, {
        hint: "allow estimated values",
      });
    const body = await this.get("/v3/forecast", { region: q.zone, signal_type: SIGNAL_TYPE, horizon_hours: 0 });
    const now = this.clock.nowMs();
    const points = this.toPoints(q, body, "live");
    const p = points.filter((x) => x.validFromMs <= now).at(-1) ?? points[0];
    if (!p) throw new AppError(Code.NotFound, `WattTime has no current value for region ${q.zone}`);
    return { ...p, isEstimated: true, estimationMethod: NOWCAST_METHOD };
  }

  async range(q: Query, fromMs: number, toMs: number): Promise<Point[]> {
    const end = Math.min(toMs, this.clock.nowMs());
    if (!(fromMs < end)) return [];
    const out: Point[] = [];
    for (let start = Math.floor(fromMs / PERIOD_MS) * PERIOD_MS; start < end; start += HISTORICAL_MAX_DAYS * DAY_MS) {
      const stop = Math.min(start + HISTORICAL_MAX_DAYS * DAY_MS, end);
      const params = { region: q.zone, signal_type: SIGNAL_TYPE, start: new Date(start).toISOString(), end: new Date(stop).toISOString() };
      out.push(...this.toPoints(q, await this.get("/v3/historical", params), "live"));
    }
    return sortUnique(out.filter((p) => p.validFromMs < toMs && p.validToMs > fromMs));
  }

  async forecast(q: Query, horizonMs: number): Promise<Point[]> {
    const hours = Math.min(Math.max(Math.ceil(horizonMs / HOUR_MS), 1), FORECAST_MAX_HOURS);
    const body = await this.get("/v3/forecast", { region: q.zone, signal_type: SIGNAL_TYPE, horizon_hours: hours });
    const now = this.clock.nowMs();
    return sortUnique(this.toPoints(q, body, "forecast").filter((p) => p.validToMs > now && p.validFromMs < now + horizonMs));
  }

  /** A data call with the bearer token; on 401 one fresh login and one more try. */
  private async get(path: string, params: Params): Promise<unknown> {
    if (this.unconfiguredReason) throw new AppError(Code.FailedPrecondition, this.unconfiguredReason, { hint: "set them to use WattTime" });
    const url = `${this.baseUrl}${path}?${new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]))}`;
    const token = await this.bearer();
    try {
      return await this.fetch(url, { authorization: `Bearer ${token}` }, token);
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== Code.Unauthenticated) throw err;
      if (this.token?.value === token) this.token = undefined;
      const fresh = await this.bearer();
      return this.fetch(url, { authorization: `Bearer ${fresh}` }, fresh);
    }
  }

  /** The kept token while younger than 25 min, else the one login in flight (started if none). */
  private bearer(): Promise<string> {
    const t = this.token;
    if (t && this.clock.nowMs() - t.atMs < TOKEN_REFRESH_MS) return Promise.resolve(t.value);
    return (this.login ??= this.logIn().finally(() => (this.login = undefined)));
  }

  private async logIn(): Promise<string> {
    const atMs = this.clock.nowMs();
    const basic = Buffer.from(`${this.options.username}:${this.options.password}`).toString("base64");
    const body = (await this.fetch(`${this.baseUrl}/login`, { authorization: `Basic ${basic}` })) as { token?: unknown };
    if (typeof body?.token !== "string" || body.token === "") throw malformed("a login answer without a token");
    this.token = { value: body.token, atMs };
    return body.token;
  }

  private async fetch(url: string, headers: Record<string, string>, token?: string): Promise<unknown> {
    try {
      return await getJson(url, { ...this.options.http, provider: NAME, headers, codeFromHttpStatus, hintFromHttpStatus });
    } catch (err) {
      throw scrub(AppError.from(err), [this.options.password, token, this.token?.value]);
    }
  }

  private toPoints(q: Query, body: unknown, source: Source): Point[] {
    const { data, meta } = (body ?? {}) as RawData;
    if (!Array.isArray(data)) throw malformed("an answer without data");
    if (meta?.units !== UNITS)
      throw new AppError(Code.Unavailable, `WattTime answered in units ${String(meta?.units ?? "(none)")}, expected ${UNITS}`);
    if (meta.region !== undefined && meta.region !== q.zone)
      throw new AppError(Code.NotFound, `WattTime answered for region ${String(meta.region)} instead of ${q.zone}`);
    const periodMs = Number(meta.data_point_period_seconds ?? 300) * 1000;
    if (!(periodMs > 0)) throw malformed(`data_point_period_seconds ${String(meta.data_point_period_seconds)}`);
    const generated = Date.parse(meta.generated_at ?? "");
    const fetchedAtMs = this.clock.nowMs();
    return data
      .filter((r) => r?.value != null)
      .map((r): Point => {
        const validFromMs = Date.parse(r.point_time ?? "");
        if (typeof r.value !== "number" || !Number.isFinite(r.value) || !Number.isFinite(validFromMs))
          throw malformed(`point ${JSON.stringify(r).slice(0, 200)}`);
        return {
          zone: q.zone,
          gPerKwh: lbsPerMwhToGPerKwh(r.value),
          validFromMs,
          validToMs: validFromMs + periodMs,
          isEstimated: false,
          provider: NAME,
          signal: "marginal",
          emissionFactor: "direct",
          source,
          fetchedAtMs,
          ...(Number.isFinite(generated) ? { sourceUpdatedAtMs: generated } : {}),
        };
      });
  }
}

/** The error with every secret (≥ 4 characters) in its message or hint replaced by ***. */
function scrub(err: AppError, secrets: Array<string | undefined>): AppError {
  const hidden = secrets.filter((s): s is string => typeof s === "string" && s.length >= 4);
  const clean = (s: string): string => hidden.reduce((out, secret) => out.split(secret).join("***"), s);
  if (!hidden.some((s) => err.message.includes(s) || err.hint?.includes(s))) return err;
  return new AppError(err.code, clean(err.message), { hint: err.hint === undefined ? undefined : clean(err.hint) });
}

function malformed(what: string): AppError {
  return new AppError(Code.Unavailable, `WattTime returned ${what}`);
}
