/** carbonmon intensity now|history|forecast: carbon intensity from the intensity service. */
import { createIntensityClient, type IntensityPoint, type IntensitySeries, type LocationInput } from "../../client/index.js";
import {
  IntensityPoint as IntensityPointCodec,
  IntensitySeries as IntensitySeriesCodec,
  IntensitySource,
} from "../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { parseLatLon } from "../../server/shared/config.js";
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
import { bestCommand } from "./intensity-best.js";
import type { CommandIo } from "./io.js";
import { emit, OUTPUT_HELP, OUTPUT_OPTIONS, protoJson } from "./output.js";

export const QUERIES = ["now", "history", "forecast"] as const;

const HELP = `Usage: carbonmon intensity now|history|forecast --location L [options]
       carbonmon intensity best --locations DE,FR,GB --duration 2h [options]   (see carbonmon intensity best --help)
       carbonmon intensity [service options]     (no subcommand: serve the intensity service; see --help there)

  now             the current intensity
  history         the past --hours hours (default 24)
  forecast        the provider's forecast

  --location L    a zone ("DE", "US-MIDW-MISO"), "lat,lon" or "auto" (required)
  --addr ADDR     the intensity service; default CARBONMON_INTENSITY_ADDR, else CARBONMON_INTENSITY_LISTEN,
                  else 127.0.0.1:50061
  --hours N       history only: how far back (default 24)
${OUTPUT_HELP}  --help          this text
${SECURITY_HELP}`;

function location(text: string | undefined): LocationInput {
  if (!text) throw new UsageError('--location is required (a zone such as DE, "lat,lon" or auto)');
  return text === "auto" ? "auto" : (parseLatLon(text) ?? text);
}

const source = (p: IntensityPoint): string => (IntensitySource[p.source] ?? "UNKNOWN").replace("INTENSITY_SOURCE_", "").toLowerCase();

/** One line per point: zone, period, g/kWh, provider, source, estimated. */
export function pointLine(p: IntensityPoint): string {
  const period = `${p.validFrom?.toISOString() ?? "?"} .. ${p.validTo?.toISOString() ?? "?"}`;
  const estimated = p.isEstimated ? `yes${p.estimationMethod ? ` (${p.estimationMethod})` : ""}` : "no";
  return `${p.zone}  ${period}  ${p.gPerKwh.toFixed(1)} gCO2eq/kWh  provider=${p.provider} source=${source(p)} estimated=${estimated}`;
}

function seriesText(s: IntensitySeries): string {
  const lines = s.points.map(pointLine);
  for (const g of s.gaps) lines.push(`gap: ${g.start?.toISOString()} .. ${g.end?.toISOString()}`);
  return `${(lines.length ? lines : [`no values for ${s.zone}`]).join("\n")}\n`;
}

async function query(which: (typeof QUERIES)[number], argv: string[], io: CommandIo): Promise<number> {
  const options = {
    location: { type: "string" },
    addr: { type: "string" },
    hours: { type: "string" },
    ...OUTPUT_OPTIONS,
    ...SECURITY_OPTIONS,
  } as const;
  const { values } = parse(argv, options);
  if (values.hours !== undefined && which !== "history") throw new UsageError("--hours is for history only");
  const where = location(values.location);
  const hours = positiveInt("--hours", values.hours, 24);
  const address = intensityAddress(values.addr, io.env);
  const client = createIntensityClient(address, clientOptions(values, io.env));
  try {
    const result = await calling("intensity service", address, async () => {
      if (which === "now") return client.current(where);
      if (which === "forecast") return client.forecast(where);
      const end = new Date();
      return client.history(where, new Date(end.getTime() - hours * 3_600_000), end);
    });
    const json = (): Promise<string> =>
      "points" in result
        ? protoJson("carbonmon.intensity.v1.IntensitySeries", IntensitySeriesCodec, result)
        : protoJson("carbonmon.intensity.v1.IntensityPoint", IntensityPointCodec, result);
    const text = "points" in result ? seriesText(result) : `${pointLine(result)}\n`;
    emit(values.json ? `${await json()}\n` : text, values.output, io.stdout);
    return 0;
  } finally {
    client.close();
  }
}

export const intensityQueryCommands: Record<string, Command> = {
  ...Object.fromEntries(QUERIES.map((q) => [q, { help: HELP, run: (argv: string[], io: CommandIo) => query(q, argv, io) }])),
  best: bestCommand,
};
export const INTENSITY_QUERY_HELP = HELP;
