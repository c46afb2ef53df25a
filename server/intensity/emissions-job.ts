/**
 * The CPU-heavy half of ComputeEmissions, as plain functions of plain data so that it can run in a worker
 * thread (emissions-worker.ts) and leave the service's event loop free: decoding a request of up to
 * MAX_SEGMENTS segments (a few MiB of protobuf), checking every segment, the arithmetic against the
 * intensity series, and encoding the answer. The history fetch (cache, store, upstream) stays on the main thread (emissions-pool.ts).
 */
import { ComputeEmissionsRequest, ComputeEmissionsResponse } from "../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { AppError, Code } from "../shared/errors.js";
import {
  computeEmissions,
  type EmissionsResult,
  MAX_SEGMENTS,
  segmentsSpan,
  validateSegments,
  type EnergySegment,
} from "./core/emissions.js";
import { isProvisional, type Point } from "./core/point.js";
import { pointToProto, type Attempt } from "./codec.js";
import type { RangeMs } from "./core/series.js";

/** The request without its segments: the small fields the main thread validates and fetches for. */
export type EmissionsRequestFields = Omit<ComputeEmissionsRequest, "segments">;

export interface DecodedEmissions {
  fields: EmissionsRequestFields;
  segments: EnergySegment[];
  /** [first start, last end): the history to fetch. */
  span: RangeMs;
}

/**
 * Decodes and checks a ComputeEmissions request: limits first (nothing is mapped or checked further for a
 * request over them), then every segment, then the span (checked before anything is fetched).
 */
export function decodeEmissions(bytes: Uint8Array): DecodedEmissions {
  let decoded: ComputeEmissionsRequest;
  try {
    decoded = ComputeEmissionsRequest.decode(bytes);
  } catch (err) {
    throw new AppError(Code.InvalidArgument, `not a ComputeEmissionsRequest message: ${(err as Error).message.slice(0, 200)}`);
  }
  const { segments: raw, ...fields } = decoded;
  if (raw.length > MAX_SEGMENTS)
    throw new AppError(Code.InvalidArgument, `${raw.length} segments, at most ${MAX_SEGMENTS} per request`, { hint: "split the request" });
  const segments = raw.map((s, i) => {
    if (!s.start || !s.end) throw new AppError(Code.InvalidArgument, `segment ${i}: start and end are required`);
    return { startMs: s.start.getTime(), endMs: s.end.getTime(), energyJ: s.energyJ, device: s.device };
  });
  if (segments.length === 0) throw new AppError(Code.InvalidArgument, "no energy segments", { hint: "send at least one segment" });
  validateSegments(segments);
  return { fields, segments, span: segmentsSpan(segments) };
}

export interface EmissionsSeries {
  points: Point[];
  /** Those of `points` a fallback filled (the same objects: one structured clone keeps them shared). */
  filled: Point[];
  gapPolicy: "error" | "fill";
  /** What each provider answered for the history (reported as is). */
  attempts: Attempt[];
  /** Now, for `provisional`. */
  nowMs: number;
}

/** The ComputeEmissions answer for a result. */
export function emissionsResponse(r: EmissionsResult, attempts: readonly Attempt[], nowMs: number): ComputeEmissionsResponse {
  return {
    carbonG: r.carbonG,
    energyJ: r.energyJ,
    totalCarbonG: r.totalCarbonG,
    totalEnergyJ: r.totalEnergyJ,
    periods: r.periods.map((p) => ({
      intensity: pointToProto(p.point),
      energyJ: p.energyJ,
      carbonG: p.carbonG,
      filled: p.filled,
      provisional: isProvisional(p.point, nowMs),
    })),
    provisional: r.periods.some((p) => isProvisional(p.point, nowMs)),
    attempts: attempts.map((a) => ({ ...a })),
  };
}

/** The encoded ComputeEmissions answer for the segments against the series. */
export function computeJob(segments: readonly EnergySegment[], series: EmissionsSeries): Uint8Array {
  const r = computeEmissions(segments, series.points, { gapPolicy: series.gapPolicy, filled: series.filled });
  return ComputeEmissionsResponse.encode(emissionsResponse(r, series.attempts, series.nowMs)).finish();
}
