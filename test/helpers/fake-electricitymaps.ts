/**
 * A fake ElectricityMaps v3 on a real node:http server (127.0.0.1:0), answering in the recorded shapes
 * (see test/fixtures/electricitymaps/history-us-midw-miso.json and /work/shared/FACTS.md): auth-token
 * checked on every request, /carbon-intensity/latest (zone or lat/lon), /history (the last 24 points),
 * /past-range (≤ 240 h, else 400), /forecast (horizonHours ≤ 72). Tests script faults per path and read
 * every request back.
 *
 * temporalGranularity (hourly, 15_minutes, 5_minutes) on latest, history and past-range: a zone's series
 * is served at the asked granularity, or at its own spacing where that is coarser; a granularity outside
 * `supportedGranularities` is coarsened to hourly without a word, like the API does for plans without it.
 * Coarser periods take the mean of the values they hold.
 */
import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { FaultScript } from "./fault-script.js";

export const FAKE_EM_TOKEN = "em-test-token-3f9c2a71d5";
const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;

export type EmGranularity = "hourly" | "15_minutes" | "5_minutes";
const GRANULARITY_MS: Record<EmGranularity, number> = { hourly: HOUR_MS, "15_minutes": 15 * MINUTE_MS, "5_minutes": 5 * MINUTE_MS };

/** A point exactly as ElectricityMaps sends it. */
export interface EmPoint {
  zone: string;
  carbonIntensity: number | null;
  datetime: string;
  updatedAt: string;
  createdAt: string;
  emissionFactorType: string;
  isEstimated: boolean;
  estimationMethod: string | null;
}

export interface EmForecastPoint {
  carbonIntensity: number | null;
  datetime: string;
}

export interface FakeLocation {
  lat: number;
  lon: number;
  zone: string;
}

export interface FakeElectricityMapsOptions {
  token?: string;
  /**
   * Points per zone, oldest first, at one spacing: hourly, 15 or 5 minutes, where the smallest gap between
   * two starts is the spacing (default: the recorded US-MIDW-MISO history as recorded).
   */
  series?: Record<string, EmPoint[]>;
  /** Forecast points per zone (default: 72 hourly points after the zone's last point). */
  forecasts?: Record<string, EmForecastPoint[]>;
  /** Coordinates → zone, matched within 0.5°. */
  locations?: FakeLocation[];
  /** Where a lat/lon outside every location lands unless shouldUseFallbackCallerLookup=false (the caller's IP). */
  callerZone?: string;
  /**
   * The server's clock. Given, /latest answers the period containing now and /history the 24 hours up to it,
   * like the live API; unset, they answer the series' last point and last 24 points (a recorded day).
   */
  nowMs?: () => number;
  /** The temporalGranularity values the plan includes (default all); others are answered hourly. */
  supportedGranularities?: readonly EmGranularity[];
}

/** A scripted misbehaviour for one path ("/carbon-intensity/latest", …). */
export interface Fault {
  /** Answer this status with `body` (object → JSON) instead of the normal answer. */
  status?: number;
  body?: string | object;
  headers?: Record<string, string>;
  /** Wait before the headers. */
  delayMs?: number;
  /** Send the headers, then wait before the body. */
  bodyDelayMs?: number;
  malformedJson?: boolean;
  /** Answer as this zone instead of the one asked for. */
  zone?: string;
  /** Every point's carbonIntensity null. */
  nullIntensity?: boolean;
  /** How many requests it applies to (default: all until cleared). */
  times?: number;
}

export interface RecordedRequest {
  /** Without the /v3 prefix, e.g. "/carbon-intensity/history". */
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
}

export interface FakeElectricityMaps {
  /** The API base, like https://api.electricitymap.org/v3. */
  url: string;
  token: string;
  requests: RecordedRequest[];
  setFault(path: string, fault: Fault | undefined): void;
  setSeries(zone: string, points: EmPoint[]): void;
  close(): Promise<void>;
}

const FIXTURE = new URL("../fixtures/electricitymaps/history-us-midw-miso.json", import.meta.url);

/** The recorded history (24 points of US-MIDW-MISO); re-dated so that the last point starts at lastStartMs. */
export function recordedHistory(lastStartMs?: number): EmPoint[] {
  const points = (JSON.parse(readFileSync(FIXTURE, "utf8")) as { history: EmPoint[] }).history;
  if (lastStartMs === undefined) return points;
  const shift = lastStartMs - Date.parse(points[points.length - 1]!.datetime);
  const move = (iso: string): string => new Date(Date.parse(iso) + shift).toISOString();
  return points.map((p) => ({ ...p, datetime: move(p.datetime), updatedAt: move(p.updatedAt), createdAt: move(p.createdAt) }));
}

/** `hours` hourly measured points from fromMs, value(i) for the i-th (default 100 + i). */
export function hourlySeries(zone: string, fromMs: number, hours: number, value: (i: number) => number | null = (i) => 100 + i): EmPoint[] {
  return seriesEvery(zone, fromMs, hours, HOUR_MS, value);
}

/** `count` measured points from fromMs, one every periodMs, value(i) for the i-th (default 100 + i). */
export function seriesEvery(
  zone: string,
  fromMs: number,
  count: number,
  periodMs: number,
  value: (i: number) => number | null = (i) => 100 + i,
): EmPoint[] {
  return Array.from({ length: count }, (_, i) => {
    const datetime = new Date(fromMs + i * periodMs).toISOString();
    const carbonIntensity = value(i);
    return {
      zone,
      carbonIntensity,
      datetime,
      updatedAt: datetime,
      createdAt: datetime,
      emissionFactorType: "lifecycle",
      isEstimated: false,
      estimationMethod: null,
    };
  });
}

/** The smallest gap between two starts of a series; hourly for fewer than two points. */
function spacingMs(points: readonly EmPoint[]): number {
  const startsMs = [...new Set(points.map((p) => Date.parse(p.datetime)))].sort((a, b) => a - b);
  let smallestMs = Infinity;
  for (let i = 1; i < startsMs.length; i++) smallestMs = Math.min(smallestMs, startsMs[i]! - startsMs[i - 1]!);
  return Number.isFinite(smallestMs) ? smallestMs : HOUR_MS;
}

/** A series in periods of periodMs (aligned to the epoch): the mean of each period's values, estimated if any is. */
function coarsen(points: readonly EmPoint[], periodMs: number): EmPoint[] {
  const buckets = new Map<number, EmPoint[]>();
  for (const p of points) {
    const startMs = Math.floor(Date.parse(p.datetime) / periodMs) * periodMs;
    buckets.set(startMs, [...(buckets.get(startMs) ?? []), p]);
  }
  return [...buckets.entries()]
    .sort(([a], [b]) => a - b)
    .map(([startMs, ps]) => {
      const values = ps.map((p) => p.carbonIntensity).filter((v): v is number => v !== null);
      const estimated = ps.find((p) => p.isEstimated);
      const latest = (key: "updatedAt" | "createdAt"): string =>
        ps
          .map((p) => p[key])
          .sort()
          .at(-1)!;
      return {
        zone: ps[0]!.zone,
        carbonIntensity: values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length,
        datetime: new Date(startMs).toISOString(),
        updatedAt: latest("updatedAt"),
        createdAt: latest("createdAt"),
        emissionFactorType: ps[0]!.emissionFactorType,
        isEstimated: estimated !== undefined,
        estimationMethod: estimated?.estimationMethod ?? null,
      };
    });
}

export async function startFakeElectricityMaps(options: FakeElectricityMapsOptions = {}): Promise<FakeElectricityMaps> {
  const token = options.token ?? FAKE_EM_TOKEN;
  const series = new Map(Object.entries(options.series ?? { "US-MIDW-MISO": recordedHistory() }));
  const script = new FaultScript<Fault>();
  const requests: RecordedRequest[] = [];
  const wait = (ms: number): Promise<void> => script.wait(ms);
  const takeFault = (path: string): Fault | undefined => script.take(path);

  const answer = (path: string, q: Record<string, string>, fault: Fault | undefined): [number, unknown] => {
    const zone = q.zone ?? locate(q);
    if (zone === undefined)
      return q.lat !== undefined
        ? [404, { error: `No zone found for coordinates ${q.lat},${q.lon}` }]
        : [400, { error: "Either zone or lat/lon must be provided" }];
    let points = series.get(zone);
    if (!points || points.length === 0) return [404, { error: `No recent data for zone "${zone}"` }];
    if (q.emissionFactorType !== undefined && !["lifecycle", "direct"].includes(q.emissionFactorType))
      return [400, { error: `Invalid emissionFactorType ${q.emissionFactorType}` }];
    const asked = q.temporalGranularity ?? "hourly";
    if (!Object.hasOwn(GRANULARITY_MS, asked)) return [400, { error: `Invalid temporalGranularity ${asked}` }];
    const supported = (options.supportedGranularities ?? ["hourly", "15_minutes", "5_minutes"]).includes(asked as EmGranularity);
    const ownMs = spacingMs(points);
    const servedMs =
      path === "/carbon-intensity/forecast" ? ownMs : Math.max(supported ? GRANULARITY_MS[asked as EmGranularity] : HOUR_MS, ownMs);
    if (servedMs !== ownMs) points = coarsen(points, servedMs);
    const shown = (ps: EmPoint[]): EmPoint[] =>
      ps.map((p) => ({
        ...p,
        zone: fault?.zone ?? p.zone,
        emissionFactorType: q.emissionFactorType ?? p.emissionFactorType,
        ...(fault?.nullIntensity ? { carbonIntensity: null } : {}),
      }));
    const answeredZone = fault?.zone ?? zone;
    if (options.nowMs && (path === "/carbon-intensity/latest" || path === "/carbon-intensity/history")) {
      const now = options.nowMs();
      points = points.filter((p) => Date.parse(p.datetime) <= now && Date.parse(p.datetime) > now - 24 * HOUR_MS);
      if (points.length === 0) return [404, { error: `No recent data for zone "${zone}"` }];
    }
    switch (path) {
      case "/carbon-intensity/latest":
        return [200, shown(points.slice(-1))[0]];
      case "/carbon-intensity/history":
        return [200, { zone: answeredZone, history: shown(points.slice(-Math.round((24 * HOUR_MS) / Math.min(servedMs, HOUR_MS)))) }];
      case "/carbon-intensity/past-range": {
        const start = Date.parse(q.start ?? ""),
          end = Date.parse(q.end ?? "");
        if (!Number.isFinite(start) || !Number.isFinite(end) || end < start)
          return [400, { error: "start and end must be datetimes, start before end" }];
        if (end - start > 240 * HOUR_MS) return [400, { error: "The maximum range is 10 days (240 hours)" }];
        const inRange = points.filter((p) => Date.parse(p.datetime) >= start && Date.parse(p.datetime) <= end);
        return [200, { zone: answeredZone, data: shown(inRange) }];
      }
      case "/carbon-intensity/forecast": {
        const hours = q.horizonHours === undefined ? 24 : Number(q.horizonHours);
        if (!(hours >= 1 && hours <= 72)) return [400, { error: "horizonHours must be between 1 and 72" }];
        const all =
          options.forecasts?.[zone] ?? hourlySeries(zone, Date.parse(points[points.length - 1]!.datetime) + HOUR_MS, 72, (i) => 300 + i);
        const forecast = all
          .slice(0, hours)
          .map((p) => ({ carbonIntensity: fault?.nullIntensity ? null : p.carbonIntensity, datetime: p.datetime }));
        return [200, { zone: answeredZone, forecast, updatedAt: points[points.length - 1]!.updatedAt }];
      }
      default:
        return [404, { error: `Not found: ${path}` }];
    }
  };

  const locate = (q: Record<string, string>): string | undefined => {
    if (q.lat === undefined || q.lon === undefined) return undefined;
    const lat = Number(q.lat),
      lon = Number(q.lon);
    const hit = options.locations?.find((l) => Math.abs(l.lat - lat) <= 0.5 && Math.abs(l.lon - lon) <= 0.5);
    return hit?.zone ?? (q.shouldUseFallbackCallerLookup === "false" ? undefined : (options.callerZone ?? "DE"));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const u = new URL(req.url ?? "/", "http://fake");
    const path = u.pathname.replace(/^\/v3(?=\/)/, "");
    const query = Object.fromEntries(u.searchParams);
    requests.push({ path, query, headers: req.headers });
    const fault = takeFault(path);
    if (fault?.delayMs) await wait(fault.delayMs);
    let [status, body]: [number, unknown] = [fault?.status ?? 0, fault?.body];
    if (!fault?.status)
      [status, body] = req.headers["auth-token"] === token ? answer(path, query, fault) : [401, { error: "Invalid auth-token" }];
    const text = fault?.malformedJson
      ? '{"zone":"US-MIDW-MISO","carbonIntensity":4'
      : typeof body === "string"
        ? body
        : JSON.stringify(body ?? {});
    if (res.destroyed) return;
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...fault?.headers });
    if (fault?.bodyDelayMs) {
      res.flushHeaders();
      await wait(fault.bodyDelayMs);
    }
    if (!res.destroyed) res.end(text);
  };

  const server = createServer((req, res) => void handle(req, res).catch(() => res.destroy()));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v3`,
    token,
    requests,
    setFault: (path, fault) => script.set(path, fault),
    setSeries: (zone, points) => void series.set(zone, points),
    close: () => {
      script.cancelWaits();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
