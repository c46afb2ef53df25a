/** carbonmon intensity best: the cleanest time and place to run a job, from the intensity service's forecasts. */
import { createIntensityClient, type LocationInput, type WindowCandidate } from "../../client/index.js";
import { parseLatLon } from "../../server/shared/config.js";
import { J_PER_KWH } from "../../server/shared/units.js";
import { BestWindowResponse } from "../../proto/gen/carbonmon/intensity/v1/intensity.js";
import {
  calling,
  clientOptions,
  intensityAddress,
  parse,
  positiveInt,
  SECURITY_HELP,
  SECURITY_OPTIONS,
  UsageError,
  type Command,
} from "./common.js";
import type { CommandIo } from "./io.js";
import { emit, OUTPUT_OPTIONS, protoJson } from "./output.js";

export const BEST_HELP = `Usage: carbonmon intensity best --locations DE,FR,GB --duration 2h [options]

  The windows with the lowest mean carbon intensity for a job of --duration, among the locations, from
  their forecasts (exact: partial forecast periods are weighted by their overlap), best first, then what
  starting now would be in each location.

  --locations L,L   zones separated by commas ("DE,FR,GB", "auto" for this machine's location)
  --location L      one more location, e.g. "lat,lon" (repeatable)
  --duration D      how long the job runs: 2h, 90m, 1h30m, 45s (required, at most 72h)
  --within D        search windows that end within D from now (default: the shortest forecast)
  --energy-kwh N    the job's energy in kWh: grams per window
  --max N           how many windows (default 5, at most 100)
  --addr ADDR       the intensity service; default CARBONMON_INTENSITY_ADDR, else CARBONMON_INTENSITY_LISTEN,
                    else 127.0.0.1:50061
  --json            the response as canonical protobuf JSON on one line
  -o, --output FILE write the result to FILE instead of stdout
  --help            this text
${SECURITY_HELP}`;

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000 };

/** "2h", "90m", "1h30m", "45s" (a number then a unit, repeated) → milliseconds. */
export function parseDurationMs(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)([hms])/g)];
  if (parts.length === 0 || parts.map((m) => m[0]).join("") !== text)
    throw new UsageError(`${name} expects a duration such as 2h, 90m or 1h30m, got ${JSON.stringify(text)}`);
  const ms = parts.reduce((sum, m) => sum + Number(m[1]) * UNIT_MS[m[2]!]!, 0);
  if (!(ms > 0)) throw new UsageError(`${name} must be more than 0`);
  return ms;
}

function locations(list: string | undefined, single: string[] | undefined): LocationInput[] {
  const zones = (list ?? "")
    .split(",")
    .map((z) => z.trim())
    .filter((z) => z !== "");
  const all: LocationInput[] = [...zones, ...(single ?? []).map((l) => (l === "auto" ? "auto" : (parseLatLon(l) ?? l)))];
  if (all.length === 0) throw new UsageError("--locations is required (zones separated by commas, e.g. DE,FR,GB)");
  return all;
}

const minute = (d: Date | undefined): string => (d ? `${d.toISOString().slice(0, 16).replace("T", " ")}` : "?");

function energyKwh(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(n))
    throw new UsageError(`--energy-kwh expects a number of kWh, got ${JSON.stringify(text)}`);
  return n;
}

/** The table: one line per window, its saving against starting now in the same zone. */
export function bestText(r: BestWindowResponse): string {
  const now = new Map(r.runNow.map((w) => [w.zone, w]));
  const grams = r.candidates.some((c) => c.carbonG !== undefined);
  const header = ["#", "zone", "start (UTC)", "end (UTC)", "gCO2eq/kWh", ...(grams ? ["gCO2eq"] : []), "vs now", "series"];
  const line = (rank: string, w: WindowCandidate, vsNow: string): string[] => [
    rank,
    w.zone,
    minute(w.start),
    minute(w.end),
    w.meanGPerKwh.toFixed(1),
    ...(grams ? [w.carbonG?.toFixed(1) ?? "-"] : []),
    vsNow,
    `${w.provider} ${w.isForecast ? "forecast" : "flat (no forecast)"}`,
  ];
  const saving = (w: WindowCandidate): string => {
    const base = now.get(w.zone)?.meanGPerKwh;
    return base === undefined || base === 0 ? "-" : `${(((w.meanGPerKwh - base) / base) * 100).toFixed(1)} %`;
  };
  const rows = [header, ...r.candidates.map((w, i) => line(String(i + 1), w, saving(w))), ...r.runNow.map((w) => line("now", w, "0.0 %"))];
  const widths = header.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const text = rows.map((row) =>
    row
      .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
  const notes = [...r.notes, ...r.skipped.map((s) => `skipped ${s.zone || "a location"}: ${s.code}: ${s.message}`)];
  return `${[`searched ${minute(r.earliestStart)} .. ${minute(r.latestEnd)} UTC`, ...text, ...notes.map((n) => `note: ${n}`)].join("\n")}\n`;
}

async function run(argv: string[], io: CommandIo): Promise<number> {
  const options = {
    locations: { type: "string" },
    location: { type: "string", multiple: true },
    duration: { type: "string" },
    within: { type: "string" },
    "energy-kwh": { type: "string" },
    max: { type: "string" },
    addr: { type: "string" },
    ...OUTPUT_OPTIONS,
    ...SECURITY_OPTIONS,
  } as const;
  const { values } = parse(argv, options);
  const where = locations(values.locations, values.location);
  const durationMs = parseDurationMs("--duration", values.duration);
  if (durationMs === undefined) throw new UsageError("--duration is required, e.g. --duration 2h");
  const withinMs = parseDurationMs("--within", values.within);
  const kwh = energyKwh(values["energy-kwh"]);
  const max = positiveInt("--max", values.max, 5);
  const address = intensityAddress(values.addr, io.env);
  const client = createIntensityClient(address, clientOptions(values, io.env));
  try {
    const result = await calling("intensity service", address, () =>
      client.bestWindow(where, {
        durationMs,
        ...(withinMs !== undefined ? { latestEnd: new Date(Date.now() + withinMs) } : {}),
        ...(kwh !== undefined ? { energyJ: kwh * J_PER_KWH } : {}),
        maxCandidates: max,
      }),
    );
    emit(
      values.json ? `${await protoJson("carbonmon.intensity.v1.BestWindowResponse", BestWindowResponse, result)}\n` : bestText(result),
      values.output,
      io.stdout,
    );
    return 0;
  } finally {
    client.close();
  }
}

export const bestCommand: Command = { help: BEST_HELP, run };
