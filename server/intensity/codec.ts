/** Domain values to generated protobuf messages (and back) for the intensity service. */
import {
  EmissionFactorType,
  GapPolicy,
  IntensitySource,
  SignalType,
  type IntensityPoint,
  type Location,
  type ProviderAttempt,
  type WindowCandidate,
} from "../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { ZONE_PATTERN } from "../shared/config.js";
import { AppError, Code } from "../shared/errors.js";
import type { EmissionFactor, Point, Signal, Source } from "./core/point.js";
import type { LocatedWindow } from "./best-window.js";

const SIGNAL: Record<Signal, SignalType> = { average: SignalType.SIGNAL_TYPE_AVERAGE, marginal: SignalType.SIGNAL_TYPE_MARGINAL };
const SOURCE: Record<Source, IntensitySource> = {
  live: IntensitySource.INTENSITY_SOURCE_LIVE,
  forecast: IntensitySource.INTENSITY_SOURCE_FORECAST,
  annual_average: IntensitySource.INTENSITY_SOURCE_ANNUAL_AVERAGE,
  configured: IntensitySource.INTENSITY_SOURCE_CONFIGURED,
};

/** UNSPECIFIED is lifecycle; a number the contract does not define is INVALID_ARGUMENT, never a silent default. */
export function emissionFactorOf(type: EmissionFactorType): EmissionFactor {
  if (type === EmissionFactorType.EMISSION_FACTOR_TYPE_DIRECT) return "direct";
  if (type === EmissionFactorType.EMISSION_FACTOR_TYPE_LIFECYCLE || type === EmissionFactorType.EMISSION_FACTOR_TYPE_UNSPECIFIED)
    return "lifecycle";
  throw new AppError(Code.InvalidArgument, `emission_factor ${String(type)} is not an EmissionFactorType`, {
    hint: "0 (unspecified: lifecycle), 1 (lifecycle) or 2 (direct)",
  });
}

/** UNSPECIFIED is fill; an undefined number is INVALID_ARGUMENT. */
export function gapPolicyOf(p: GapPolicy): "error" | "fill" {
  if (p === GapPolicy.GAP_POLICY_ERROR) return "error";
  if (p === GapPolicy.GAP_POLICY_FILL || p === GapPolicy.GAP_POLICY_UNSPECIFIED) return "fill";
  throw new AppError(Code.InvalidArgument, `gap_policy ${String(p)} is not a GapPolicy`, {
    hint: "0 (unspecified: fill), 1 (error) or 2 (fill)",
  });
}

export function emissionFactorToProto(f: EmissionFactor): EmissionFactorType {
  return f === "direct" ? EmissionFactorType.EMISSION_FACTOR_TYPE_DIRECT : EmissionFactorType.EMISSION_FACTOR_TYPE_LIFECYCLE;
}

/** One failed (or the successful) provider while answering. */
export interface Attempt {
  provider: string;
  code: string;
  message: string;
}

export function pointToProto(p: Point, cached = false, attempts: readonly Attempt[] = []): IntensityPoint {
  return {
    zone: p.zone,
    gPerKwh: p.gPerKwh,
    validFrom: new Date(p.validFromMs),
    validTo: new Date(p.validToMs),
    isEstimated: p.isEstimated,
    estimationMethod: p.estimationMethod ?? "",
    provider: p.provider,
    signal: SIGNAL[p.signal],
    emissionFactor: emissionFactorToProto(p.emissionFactor),
    source: SOURCE[p.source],
    fetchedAt: new Date(p.fetchedAtMs),
    ...(p.sourceUpdatedAtMs !== undefined ? { sourceUpdatedAt: new Date(p.sourceUpdatedAtMs) } : {}),
    attempts: attempts.map((a): ProviderAttempt => ({ ...a })),
    cached,
  };
}

export type LocationQuery = { kind: "zone"; zone: string } | { kind: "coordinates"; lat: number; lon: number } | { kind: "auto" };

/** A request's Location, validated. */
export function locationOf(location: Location | undefined): LocationQuery {
  if (location?.zone !== undefined && location.zone !== "") {
    if (!ZONE_PATTERN.test(location.zone)) {
      throw new AppError(Code.InvalidArgument, `zone ${JSON.stringify(location.zone)} is not a grid zone`, {
        hint: 'use e.g. "DE", "GB" or "US-MIDW-MISO"',
      });
    }
    return { kind: "zone", zone: location.zone };
  }
  const c = location?.coordinates;
  if (c) {
    if (!(Math.abs(c.lat) <= 90 && Math.abs(c.lon) <= 180)) {
      throw new AppError(Code.InvalidArgument, `coordinates ${c.lat},${c.lon} are out of range`, { hint: "lat is -90..90, lon -180..180" });
    }
    return { kind: "coordinates", lat: c.lat, lon: c.lon };
  }
  if (location?.autoDetect) return { kind: "auto" };
  throw new AppError(Code.InvalidArgument, "location is required: a zone, coordinates or auto_detect", { hint: 'e.g. {"zone":"DE"}' });
}

/** A GetBestWindow window with its series' provenance; `location` as the request gave it. */
export function windowToProto(w: LocatedWindow, location: Location | undefined): WindowCandidate {
  const o = w.outlook;
  const first = o.points[0];
  return {
    location,
    zone: o.zone,
    start: new Date(w.startMs),
    end: new Date(w.endMs),
    meanGPerKwh: w.meanGPerKwh,
    ...(w.carbonG !== undefined ? { carbonG: w.carbonG } : {}),
    provider: o.provider,
    signal: SIGNAL[o.signal],
    emissionFactor: emissionFactorToProto(first?.emissionFactor ?? "lifecycle"),
    source: o.forecast ? IntensitySource.INTENSITY_SOURCE_FORECAST : SOURCE[first?.source ?? "configured"],
    isForecast: o.forecast,
    issuedAt: new Date(o.issuedAtMs),
    fetchedAt: new Date(o.fetchedAtMs),
    attempts: o.attempts.map((a): ProviderAttempt => ({ ...a })),
  };
}
