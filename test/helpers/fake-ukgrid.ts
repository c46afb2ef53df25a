/**
 * A fake UK Carbon Intensity API (api.carbonintensity.org.uk) on a real node:http server at 127.0.0.1:0,
 * built from the API's documented shapes: `{"data":[{"from":"2018-01-20T12:00Z","to":"2018-01-20T12:30Z",
 * "intensity":{"forecast":266,"actual":263,"index":"moderate"}}]}`, half-hour periods, `actual` null for
 * periods not over yet. Routes: /intensity (the current half hour), /intensity/{from}/{to} (400 beyond 14
 * days), /intensity/{from}/fw48h. Values come from a scripted series; faults can be injected; every request
 * is recorded.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

const HALF_HOUR_MS = 30 * 60_000;
const MAX_RANGE_MS = 14 * 86_400_000;

export interface FakeIntensity {
  forecast: number | null;
  actual: number | null;
  index?: string;
}

/** The values of the half hour starting at periodStartMs; undefined leaves the period out. */
export type FakeSeries = (periodStartMs: number, nowMs: number) => FakeIntensity | undefined;

export interface FakeUkGridOptions {
  /** The fake's "now": which half hour is current and which are future. Default Date.now. */
  nowMs?: () => number;
  series?: FakeSeries;
  /**
   * Whether /intensity/{from}/{to} also returns the half hour ending at {from}, as the live API does
   * (default true): clients must clip to the range they asked for.
   */
  leadingPeriod?: boolean;
}

export interface Fault {
  /** HTTP status to answer with (default 200 when `malformed` or `body`, else 500). */
  status?: number;
  /** Raw body to send instead of the usual JSON. */
  body?: string;
  /** Shorthand for a 200 with a truncated JSON body. */
  malformed?: boolean;
  /** Wait this long before answering (for client timeouts). */
  delayMs?: number;
  /** How many requests the fault applies to; default: all until cleared. */
  times?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
}

export interface FakeUkGrid {
  url: string;
  requests: RecordedRequest[];
  /** Injects a fault for the next requests; no argument clears it. */
  setFault(fault?: Fault): void;
  close(): Promise<void>;
}

export const isoMinute = (ms: number): string => `${new Date(ms).toISOString().slice(0, 16)}Z`;

/** 200-247 g/kWh by half hour of the day; actual = forecast − 5 once the period is over, else null. */
export const defaultSeries: FakeSeries = (startMs, nowMs) => {
  const forecast = 200 + ((startMs / HALF_HOUR_MS) % 48);
  return { forecast, actual: startMs + HALF_HOUR_MS <= nowMs ? forecast - 5 : null };
};

/** A series scripted by period start ("2018-01-20T12:00Z"); periods not listed are left out. */
export function scriptedSeries(byFrom: Record<string, FakeIntensity>): FakeSeries {
  const byStartMs = new Map(Object.entries(byFrom).map(([from, v]) => [Date.parse(from), v]));
  return (startMs) => byStartMs.get(startMs);
}

function indexOf(gPerKwh: number | null): string {
  if (gPerKwh === null) return "moderate";
  return gPerKwh < 40 ? "very low" : gPerKwh < 120 ? "low" : gPerKwh < 200 ? "moderate" : gPerKwh < 290 ? "high" : "very high";
}

function periods(series: FakeSeries, nowMs: number, firstStartMs: number, endMs: number): unknown[] {
  const data: unknown[] = [];
  for (let t = firstStartMs; t < endMs; t += HALF_HOUR_MS) {
    const v = series(t, nowMs);
    if (!v) continue;
    const intensity = { forecast: v.forecast, actual: v.actual, index: v.index ?? indexOf(v.actual ?? v.forecast) };
    data.push({ from: isoMinute(t), to: isoMinute(t + HALF_HOUR_MS), intensity });
  }
  return data;
}

const floorHalfHour = (ms: number): number => Math.floor(ms / HALF_HOUR_MS) * HALF_HOUR_MS;
const badRequest = (message: string) => ({ status: 400, body: { error: { code: "400 Bad Request", message } } });

/** The answer to a GET path, without faults. */
function route(path: string, options: Required<FakeUkGridOptions>): { status: number; body: unknown } {
  const nowMs = options.nowMs();
  if (path === "/intensity") {
    const startMs = floorHalfHour(nowMs);
    return { status: 200, body: { data: periods(options.series, nowMs, startMs, startMs + HALF_HOUR_MS) } };
  }
  const m = /^\/intensity\/([^/]+)\/([^/]+)$/.exec(path);
  if (!m) return { status: 404, body: { error: { code: "404 Not Found", message: `no route ${path}` } } };
  const fromMs = Date.parse(decodeURIComponent(m[1]!));
  if (!Number.isFinite(fromMs)) return badRequest(`bad from ${m[1]}`);
  if (m[2] === "fw48h") {
    return {
      status: 200,
      body: { data: periods(options.series, nowMs, floorHalfHour(fromMs), floorHalfHour(fromMs) + 96 * HALF_HOUR_MS) },
    };
  }
  const toMs = Date.parse(decodeURIComponent(m[2]!));
  if (!Number.isFinite(toMs) || toMs <= fromMs) return badRequest(`bad to ${m[2]}`);
  if (toMs - fromMs > MAX_RANGE_MS) return badRequest("Date range must be no more than 14 days");
  const firstStartMs = floorHalfHour(fromMs) - (options.leadingPeriod && fromMs % HALF_HOUR_MS === 0 ? HALF_HOUR_MS : 0);
  return { status: 200, body: { data: periods(options.series, nowMs, firstStartMs, toMs) } };
}

export async function startFakeUkGrid(options: FakeUkGridOptions = {}): Promise<FakeUkGrid> {
  const opts: Required<FakeUkGridOptions> = { nowMs: Date.now, series: defaultSeries, leadingPeriod: true, ...options };
  const requests: RecordedRequest[] = [];
  let fault: (Fault & { left: number }) | undefined;

  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    requests.push({ method: req.method ?? "GET", path });
    const active = fault && fault.left > 0 ? fault : undefined;
    if (active) active.left--;
    const send = (status: number, body: string) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(body);
    };
    const answer = () => {
      if (active && (active.status !== undefined || active.body !== undefined || active.malformed)) {
        const body =
          active.body ??
          (active.malformed
            ? '{"data":[{"from":"2018-01-20T12:00Z",'
            : JSON.stringify({ error: { code: `${active.status ?? 500}`, message: "injected fault" } }));
        return send(active.status ?? (active.malformed || active.body !== undefined ? 200 : 500), body);
      }
      if (req.method !== "GET") return send(405, JSON.stringify({ error: { code: "405", message: "GET only" } }));
      const { status, body } = route(path, opts);
      send(status, JSON.stringify(body));
    };
    if (active?.delayMs) setTimeout(answer, active.delayMs);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setFault(f?: Fault) {
      fault = f ? { ...f, left: f.times ?? Infinity } : undefined;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
