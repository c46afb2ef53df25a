/**
 * GetBestWindow's domain: the locations' outlooks (forecasts, or flat series where a provider has none)
 * through the fallback chain and cache, the range to search, the exact search (core/best-window.ts), and
 * the statuses and notes that say why something was not offered.
 */
import { AppError, Code } from "../shared/errors.js";
import { HOUR_MS, carbonG } from "../shared/units.js";
import type { LocationQuery } from "./codec.js";
import { prepareSeries, runsOf, windowMean, type PreparedSeries } from "./core/best-window.js";
import { rankWindows } from "./core/rank-windows.js";
import type { EmissionFactor } from "./core/point.js";
import type { Intensity, Outlook } from "./intensity.js";

/** The furthest any provider forecasts (ElectricityMaps and WattTime: 72 h; the UK grid: 48 h). */
export const OUTLOOK_HORIZON_MS = 72 * HOUR_MS;
export const MAX_LOCATIONS = 1000;
export const MAX_CANDIDATES = 100;
export const DEFAULT_CANDIDATES = 5;

export interface BestWindowQuery {
  locations: LocationQuery[];
  durationMs: number;
  earliestStartMs?: number;
  latestEndMs?: number;
  energyJ?: number;
  emissionFactor: EmissionFactor;
  /** 0: the default (5). */
  maxCandidates: number;
  provider: string;
}

/** A window in one location (index into the query's locations), with the outlook it was computed on. */
export interface LocatedWindow {
  location: number;
  outlook: Outlook;
  startMs: number;
  endMs: number;
  meanGPerKwh: number;
  carbonG?: number;
}

export interface BestWindowResult {
  candidates: LocatedWindow[];
  runNow: LocatedWindow[];
  fromMs: number;
  toMs: number;
  notes: string[];
  skipped: Array<{ location: number; code: string; message: string }>;
}

const iso = (ms: number): string => new Date(ms).toISOString().replace(":00.000Z", "Z");
const hours = (ms: number): string => `${+(ms / HOUR_MS).toFixed(2)} h`;

/** Series prepared once per cached outlook: a repeated question costs only the search. */
const prepared = new WeakMap<Outlook, PreparedSeries>();
function seriesOf(o: Outlook): PreparedSeries {
  let s = prepared.get(o);
  if (!s) prepared.set(o, (s = prepareSeries(o.points.map((p) => ({ startMs: p.validFromMs, endMs: p.validToMs, gPerKwh: p.gPerKwh })))));
  return s;
}

const endOf = (o: Outlook): number => o.points.at(-1)?.validToMs ?? -Infinity;

function validate(q: BestWindowQuery, nowMs: number): { fromMs: number; max: number } {
  const bad = (message: string, hint?: string) => new AppError(Code.InvalidArgument, message, { hint });
  if (q.locations.length === 0) throw bad("locations is empty", 'give at least one, e.g. [{"zone":"DE"}]');
  if (q.locations.length > MAX_LOCATIONS) throw bad(`at most ${MAX_LOCATIONS} locations per request`);
  if (!(q.durationMs > 0 && q.durationMs <= OUTLOOK_HORIZON_MS))
    throw bad(`duration must be more than 0 and at most ${hours(OUTLOOK_HORIZON_MS)}`, 'e.g. "7200s" for 2 h');
  if (q.energyJ !== undefined && !(q.energyJ >= 0 && Number.isFinite(q.energyJ))) throw bad("energy_j must be a finite number >= 0");
  if (q.maxCandidates > MAX_CANDIDATES) throw bad(`max_candidates is at most ${MAX_CANDIDATES}`);
  const fromMs = Math.max(q.earliestStartMs ?? nowMs, nowMs);
  if (q.latestEndMs !== undefined && !(q.latestEndMs - fromMs >= q.durationMs)) {
    throw bad(
      `the range ${iso(fromMs)} .. ${iso(q.latestEndMs)} is shorter than the duration (${hours(q.durationMs)})`,
      "move latest_end later or earliest_start earlier",
    );
  }
  if (fromMs + q.durationMs > nowMs + OUTLOOK_HORIZON_MS) {
    throw new AppError(
      Code.OutOfRange,
      `a ${hours(q.durationMs)} window starting at ${iso(fromMs)} ends after every forecast: the horizon is ${hours(OUTLOOK_HORIZON_MS)}, until ${iso(nowMs + OUTLOOK_HORIZON_MS)}`,
    );
  }
  return { fromMs, max: q.maxCandidates || DEFAULT_CANDIDATES };
}

/** Outlooks per location; a location whose providers are down for now is skipped, a misconfigured one fails the request. */
async function outlooks(
  intensity: Intensity,
  q: BestWindowQuery,
): Promise<{ answered: Array<{ location: number; outlook: Outlook }>; skipped: BestWindowResult["skipped"] }> {
  const settled = await Promise.allSettled(
    q.locations.map((location) =>
      intensity.outlook({ location, emissionFactor: q.emissionFactor, allowEstimated: true, provider: q.provider }, OUTLOOK_HORIZON_MS),
    ),
  );
  const answered: Array<{ location: number; outlook: Outlook }> = [];
  const skipped: BestWindowResult["skipped"] = [];
  const failures: AppError[] = [];
  settled.forEach((r, location) => {
    if (r.status === "fulfilled") return void answered.push({ location, outlook: r.value });
    const e = AppError.from(r.reason);
    if (e.code === Code.FailedPrecondition || e.code === Code.InvalidArgument || e.code === Code.Internal) throw e;
    failures.push(e);
    skipped.push({ location, code: e.code, message: e.message });
  });
  if (answered.length === 0)
    throw new AppError(failures[0]!.code, `no location could be answered: ${failures.map((f) => f.message).join("; ")}`, {
      hint: failures[0]!.hint,
    });
  return { answered, skipped };
}

/** The end of the search: latest_end, else the shortest forecast's end (flat series only count when nothing else does). */
function rangeEnd(q: BestWindowQuery, answered: ReadonlyArray<{ outlook: Outlook }>): number {
  if (q.latestEndMs !== undefined) return q.latestEndMs;
  const forecasts = answered.filter((a) => a.outlook.forecast);
  return Math.min(...(forecasts.length > 0 ? forecasts : answered).map((a) => endOf(a.outlook)));
}

function nothingFits(q: BestWindowQuery, answered: ReadonlyArray<{ outlook: Outlook }>, fromMs: number, toMs: number): AppError {
  const each = answered.map(({ outlook: o }) => {
    const runs = runsOf(seriesOf(o)).filter((r) => r.endMs > fromMs && r.startMs < toMs);
    const data =
      runs.length === 0
        ? "no values in the range"
        : `values ${runs.map((r) => `${iso(Math.max(r.startMs, fromMs))} .. ${iso(Math.min(r.endMs, toMs))}`).join(", ")}`;
    return `${o.zone}: ${o.forecast ? "forecast" : "flat series"} until ${iso(endOf(o))} (${hours(endOf(o) - o.fetchedAtMs)} horizon), ${data}`;
  });
  return new AppError(
    Code.OutOfRange,
    `no ${hours(q.durationMs)} window without a gap fits in ${iso(fromMs)} .. ${iso(toMs)}: ${each.join("; ")}`,
    {
      hint: "ask for a shorter duration, or an earlier earliest_start / later latest_end inside the forecasts",
    },
  );
}

function flatNote(o: Outlook): string {
  return `${o.zone}: ${o.provider} has no forecast; its ${o.points[0]?.source === "annual_average" ? "annual average" : "configured constant"} is flat, so starting later changes nothing there`;
}

export async function bestWindow(intensity: Intensity, q: BestWindowQuery, nowMs: number): Promise<BestWindowResult> {
  const { fromMs, max } = validate(q, nowMs);
  const { answered, skipped } = await outlooks(intensity, q);
  const toMs = rangeEnd(q, answered);
  if (!(toMs - fromMs >= q.durationMs)) {
    const shortest = answered.reduce((a, b) => (endOf(b.outlook) < endOf(a.outlook) ? b : a)).outlook;
    throw new AppError(
      Code.OutOfRange,
      `a ${hours(q.durationMs)} window from ${iso(fromMs)} does not fit in the forecasts: the shortest (${shortest.zone}, ${shortest.provider}) ends at ${iso(endOf(shortest))}, a ${hours(endOf(shortest) - shortest.fetchedAtMs)} horizon`,
      {
        hint: "set latest_end to search past it, or ask for a shorter duration",
      },
    );
  }
  const series = answered.map((a) => seriesOf(a.outlook));
  const withGrams = (w: Omit<LocatedWindow, "carbonG">): LocatedWindow =>
    q.energyJ === undefined ? w : { ...w, carbonG: carbonG(q.energyJ, w.meanGPerKwh) };
  const ranked = rankWindows(series, { fromMs, toMs, durationMs: q.durationMs }, max);
  if (ranked.length === 0) throw nothingFits(q, answered, fromMs, toMs);
  const candidates = ranked.map((w) =>
    withGrams({
      location: answered[w.series]!.location,
      outlook: answered[w.series]!.outlook,
      startMs: w.startMs,
      endMs: w.endMs,
      meanGPerKwh: w.meanGPerKwh,
    }),
  );
  const notes: string[] = [];
  const runNow: LocatedWindow[] = [];
  answered.forEach(({ location, outlook }, i) => {
    if (!outlook.forecast) notes.push(flatNote(outlook));
    const mean = windowMean(series[i]!, fromMs, q.durationMs);
    if (mean === null)
      notes.push(
        `${outlook.zone}: the series has no value for part of ${iso(fromMs)} .. ${iso(fromMs + q.durationMs)}, so there is no run-now figure`,
      );
    else runNow.push(withGrams({ location, outlook, startMs: fromMs, endMs: fromMs + q.durationMs, meanGPerKwh: mean }));
    if (!runsOf(series[i]!).some((r) => Math.min(r.endMs, toMs) - Math.max(r.startMs, fromMs) >= q.durationMs))
      notes.push(`${outlook.zone}: no ${hours(q.durationMs)} stretch without a gap in ${iso(fromMs)} .. ${iso(toMs)}`);
  });
  return { candidates, runNow, fromMs, toMs, notes, skipped };
}
