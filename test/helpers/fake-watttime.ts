/**
 * A fake WattTime v3 on a real node:http server (127.0.0.1:0), answering in the documented shapes (see
 * /work/shared/FACTS.md, "WattTime API v3"): GET /login with HTTP Basic (401 for wrong credentials) issues
 * bearer tokens that expire after tokenTtlMs on the clock the test passes (default wall time); the data
 * endpoints /v3/region-from-loc, /v3/forecast, /v3/historical and /v3/signal-index check the bearer token
 * (401 when expired or unknown). Forecast and historical serve 5-minute points of a scripted function in
 * lbs CO2/MWh, for the plan's regions only (403 for the others, like a free account: CAISO_NORTH);
 * unknown regions and locations are 400. Tests script faults per path, expire every token, and read every
 * request back (loginCount()).
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { FaultScript } from "./fault-script.js";

export const FAKE_WT_USERNAME = "carbonmon-test";
export const FAKE_WT_PASSWORD = "wt-pass-8d1e77c4b2";
export const PERIOD_MS = 300_000;
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

export interface FakeWattTimeLocation {
  lat: number;
  lon: number;
  region: string;
  name: string;
}

export interface FakeWattTimeOptions {
  username?: string;
  password?: string;
  /** How long a token is accepted (default 30 min). */
  tokenTtlMs?: number;
  /** The server's clock: token expiry, the forecast's generated_at, the end of history (default Date.now). */
  nowMs?: () => number;
  /** Regions that exist (default CAISO_NORTH, PJM_DC, ERCOT_NORTHCENTRAL). Others are 400. */
  regions?: string[];
  /** Regions of the plan for forecast/historical (default ["CAISO_NORTH"], a free account). Others are 403. */
  planRegions?: string[];
  /** Coordinates → region, matched within 0.5° (default San Francisco and Washington DC). */
  locations?: FakeWattTimeLocation[];
  /** lbs CO2/MWh of the 5-minute point starting at pointMs (default 800 + the 5-minute slot of the day mod 288). */
  value?: (region: string, pointMs: number) => number | null;
  /** The longest /v3/historical span accepted (default 30 days; longer is 400). */
  historicalMaxMs?: number;
  /** /v3/forecast answers at most this many hours, whatever horizon_hours asks (a forecast shorter than asked). */
  forecastMaxHours?: number;
}

/** A scripted misbehaviour for one path ("/login", "/v3/forecast", …). */
export interface Fault {
  /** Answer this status with `body` (object → JSON) instead of the normal answer. */
  status?: number;
  body?: string | object;
  headers?: Record<string, string>;
  /** Wait before answering. */
  delayMs?: number;
  malformedJson?: boolean;
  /** meta.units of data answers. */
  units?: string;
  /** meta.region of data answers. */
  region?: string;
  /** meta.data_point_period_seconds of data answers (the points stay 5 minutes apart). */
  periodSeconds?: number;
  /** A 401 body that repeats the credentials presented (the token, or the decoded user:password): redaction tests. */
  echoCredentials?: boolean;
  /** How many requests it applies to (default: all until cleared). */
  times?: number;
}

export interface RecordedRequest {
  /** e.g. "/login", "/v3/forecast". */
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
}

export interface FakeWattTime {
  /** The API root, like https://api.watttime.org. */
  url: string;
  requests: RecordedRequest[];
  /** Every token issued, oldest first. */
  tokens: string[];
  loginCount(): number;
  setFault(path: string, fault: Fault | undefined): void;
  /** Every token issued so far is rejected from now on. */
  expireTokens(): void;
  close(): Promise<void>;
}

const floor5 = (ms: number): number => Math.floor(ms / PERIOD_MS) * PERIOD_MS;
const ceil5 = (ms: number): number => Math.ceil(ms / PERIOD_MS) * PERIOD_MS;
const iso = (ms: number): string => new Date(ms).toISOString().replace(".000Z", "+00:00");
const defaultValue = (_region: string, ms: number): number => 800 + (Math.floor((ms % DAY_MS) / PERIOD_MS) % 288);

export async function startFakeWattTime(options: FakeWattTimeOptions = {}): Promise<FakeWattTime> {
  const username = options.username ?? FAKE_WT_USERNAME;
  const password = options.password ?? FAKE_WT_PASSWORD;
  const ttl = options.tokenTtlMs ?? 30 * MINUTE_MS;
  const now = options.nowMs ?? Date.now;
  const regions = new Set(options.regions ?? ["CAISO_NORTH", "PJM_DC", "ERCOT_NORTHCENTRAL"]);
  const plan = new Set(options.planRegions ?? ["CAISO_NORTH"]);
  const locations = options.locations ?? [
    { lat: 37.77, lon: -122.42, region: "CAISO_NORTH", name: "California ISO Northern" },
    { lat: 38.9, lon: -77.04, region: "PJM_DC", name: "PJM DC" },
  ];
  const value = options.value ?? defaultValue;
  const historicalMaxMs = options.historicalMaxMs ?? 30 * DAY_MS;
  const issued = new Map<string, number>();
  const tokens: string[] = [];
  const script = new FaultScript<Fault>();
  const requests: RecordedRequest[] = [];
  const wait = (ms: number): Promise<void> => script.wait(ms);
  const takeFault = (path: string): Fault | undefined => script.take(path);

  /** The credentials presented: the bearer token, or the decoded user:password of Basic. */
  const presented = (req: IncomingMessage): { basic?: string; bearer?: string } => {
    const [scheme, credential] = (req.headers.authorization ?? "").split(" ", 2);
    if (scheme === "Basic") return { basic: Buffer.from(credential ?? "", "base64").toString("utf8") };
    return scheme === "Bearer" ? { bearer: credential } : {};
  };

  const unauthorized = (req: IncomingMessage, fault: Fault | undefined, why: string): [number, unknown] => {
    const c = presented(req);
    return [401, { error: fault?.echoCredentials ? `${why}: credentials ${c.bearer ?? c.basic ?? ""} rejected` : why }];
  };

  const data = (region: string, fromMs: number, count: number, fault: Fault | undefined, units = "lbs_co2_per_mwh", v = value) => {
    const points = Array.from({ length: count }, (_, i) => fromMs + i * PERIOD_MS).map((ms) => ({
      point_time: iso(ms),
      value: v(region, ms),
    }));
    const meta = {
      data_point_period_seconds: fault?.periodSeconds ?? 300,
      region: fault?.region ?? region,
      signal_type: "co2_moer",
      units: fault?.units ?? units,
      warnings: [],
      generated_at_period_seconds: 300,
      generated_at: iso(floor5(now())),
    };
    return { data: points, meta };
  };

  const answer = (req: IncomingMessage, path: string, q: Record<string, string>, fault: Fault | undefined): [number, unknown] => {
    if (path === "/login") {
      const { basic } = presented(req);
      if (basic !== `${username}:${password}`) return unauthorized(req, fault, "invalid username or password");
      const token = randomBytes(24).toString("hex");
      issued.set(token, now());
      tokens.push(token);
      return [200, { token }];
    }
    const { bearer } = presented(req);
    const at = bearer === undefined ? undefined : issued.get(bearer);
    if (at === undefined || now() - at >= ttl) return unauthorized(req, fault, "invalid or expired token");
    if (q.signal_type !== "co2_moer") return [400, { error: `signal_type ${q.signal_type ?? "(missing)"} is not supported` }];
    if (path === "/v3/region-from-loc") {
      const lat = Number(q.latitude),
        lon = Number(q.longitude);
      const hit = locations.find((l) => Math.abs(l.lat - lat) <= 0.5 && Math.abs(l.lon - lon) <= 0.5);
      return hit
        ? [200, { region: hit.region, region_full_name: hit.name, signal_type: "co2_moer" }]
        : [400, { error: "Coordinates not found" }];
    }
    const region = q.region ?? "";
    if (!regions.has(region)) return [400, { error: `Unknown region ${region}` }];
    const head = floor5(now());
    if (path === "/v3/signal-index") {
      const current = value(region, head) ?? 0;
      const day = Array.from({ length: 288 }, (_, i) => value(region, head - i * PERIOD_MS) ?? 0);
      const percentile = Math.round((100 * day.filter((x) => x < current).length) / (day.length - 1));
      return [200, data(region, head, 1, fault, "percentile", () => percentile)];
    }
    if (!plan.has(region)) return [403, { error: `Your account does not have access to region ${region}` }];
    if (path === "/v3/forecast") {
      const hours = Number(q.horizon_hours ?? 24);
      if (!Number.isInteger(hours) || hours < 0 || hours > 72) return [400, { error: "horizon_hours must be an integer from 0 to 72" }];
      return [200, data(region, head, Math.max(1, Math.min(hours, options.forecastMaxHours ?? hours) * 12), fault)];
    }
    if (path === "/v3/historical") {
      const zoned = (s: string | undefined): boolean => /(Z|[+-]\d\d:?\d\d)$/.test(s ?? "");
      const start = Date.parse(q.start ?? ""),
        end = Date.parse(q.end ?? "");
      if (!zoned(q.start) || !zoned(q.end) || !Number.isFinite(start) || !Number.isFinite(end) || end < start)
        return [400, { error: "start and end must be datetimes with a timezone, start before end" }];
      if (end - start > historicalMaxMs) return [400, { error: "The requested time range is too long" }];
      const from = ceil5(start),
        last = Math.min(floor5(end), head - PERIOD_MS);
      return [200, data(region, from, Math.max(0, (last - from) / PERIOD_MS + 1), fault)];
    }
    return [404, { error: `No route ${path}` }];
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const u = new URL(req.url ?? "/", "http://fake");
    const query = Object.fromEntries(u.searchParams);
    requests.push({ path: u.pathname, query, headers: req.headers });
    const fault = takeFault(u.pathname);
    if (fault?.delayMs) await wait(fault.delayMs);
    let [status, body]: [number, unknown] = [fault?.status ?? 0, fault?.body];
    if (fault?.status === 401 && fault.echoCredentials) [status, body] = unauthorized(req, fault, "rejected");
    else if (!fault?.status) [status, body] = answer(req, u.pathname, query, fault);
    const text = fault?.malformedJson ? '{"data":[{"point_time":"2024-' : typeof body === "string" ? body : JSON.stringify(body ?? {});
    if (res.destroyed) return;
    res.writeHead(status, { "content-type": "application/json", ...fault?.headers });
    res.end(text);
  };

  const server = createServer((req, res) => void handle(req, res).catch(() => res.destroy()));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    tokens,
    loginCount: () => requests.filter((r) => r.path === "/login").length,
    setFault: (path, fault) => script.set(path, fault),
    expireTokens: () => issued.clear(),
    close: () => {
      script.cancelWaits();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
