/** createIntensityClient: the CarbonIntensity service as promises; every call is idempotent, so retried. */
import type { ChannelCredentials, ChannelOptions } from "@grpc/grpc-js";
import {
  CarbonIntensityClient,
  EmissionFactorType,
  GapPolicy,
  type BestWindowResponse,
  type ComputeEmissionsResponse,
  type IntensityPoint,
  type IntensitySeries,
  type Location,
  type ProviderInfo,
  type ResolvedLocation,
} from "../proto/gen/carbonmon/intensity/v1/intensity.js";
import { channelSecurity, type ClientSecurityOptions } from "./security.js";
import { CarbonmonClientError } from "./client-error.js";
import { durationFromMs, unary, type CallOptionsLite, type RetryListener, type RpcDefaults } from "./rpc.js";
import { status } from "@grpc/grpc-js";

export interface IntensityClientOptions {
  /** Per-attempt deadline, ms; default 10,000. */
  deadlineMs?: number;
  /** Retries on UNAVAILABLE / DEADLINE_EXCEEDED; default 2. */
  retries?: number;
  credentials?: ChannelCredentials;
  /** TLS (mutual with a client certificate) and a bearer token; `clientSecurityFromFiles` reads them from files. */
  security?: ClientSecurityOptions;
  channelOptions?: ChannelOptions;
  onRetry?: RetryListener;
}

/** A zone ("DE", "US-MIDW-MISO"), coordinates, or "auto" (this machine's location by IP lookup). */
export type LocationInput = string | { lat: number; lon: number } | "auto";

export interface IntensityQueryOptions extends CallOptionsLite {
  emissionFactor?: "lifecycle" | "direct";
  allowEstimated?: boolean;
  /** Ask this provider only. */
  provider?: string;
}

export interface GapOptions extends IntensityQueryOptions {
  /** "error": FAILED_PRECONDITION naming the gaps; "fill": from the next providers. Default: the server's. */
  gapPolicy?: "error" | "fill";
}

export interface SegmentInput {
  start: Date;
  /** Default: start (an instantaneous amount). */
  end?: Date;
  energyJ: number;
  /** e.g. "gpu:0"; default "energy". */
  device?: string;
}

export interface BestWindowOptions extends CallOptionsLite {
  /** How long the job runs, ms (at most 72 h). */
  durationMs: number;
  /** Default: now. */
  earliestStart?: Date;
  /** Default: the end of the shortest forecast among the locations. */
  latestEnd?: Date;
  /** The job's energy, to get grams per window (carbon_g). */
  energyJ?: number;
  emissionFactor?: "lifecycle" | "direct";
  /** Default 5, at most 100. */
  maxCandidates?: number;
  /** Ask this provider only. */
  provider?: string;
}

export interface IntensityClient {
  readonly address: string;
  readonly raw: CarbonIntensityClient;
  current(location: LocationInput, options?: IntensityQueryOptions): Promise<IntensityPoint>;
  recent(location: LocationInput, options?: IntensityQueryOptions): Promise<IntensitySeries>;
  history(location: LocationInput, start: Date, end: Date, options?: GapOptions): Promise<IntensitySeries>;
  forecast(location: LocationInput, options?: IntensityQueryOptions & { horizonMs?: number }): Promise<IntensitySeries>;
  computeEmissions(location: LocationInput, segments: SegmentInput[], options?: GapOptions): Promise<ComputeEmissionsResponse>;
  /**
   * The cleanest windows of `durationMs` among the locations, from their forecasts, best first, with the
   * figures for starting at once (`runNow`) to compare with.
   */
  bestWindow(locations: LocationInput[], options: BestWindowOptions): Promise<BestWindowResponse>;
  resolveLocation(location: LocationInput, options?: CallOptionsLite): Promise<ResolvedLocation>;
  listProviders(options?: CallOptionsLite): Promise<ProviderInfo[]>;
  close(): void;
}

export function toLocation(location: LocationInput): Location {
  if (location === "auto") return { autoDetect: true };
  if (typeof location === "string") return { zone: location };
  if (location && typeof location === "object" && typeof location.lat === "number" && typeof location.lon === "number") {
    return { coordinates: { lat: location.lat, lon: location.lon } };
  }
  throw new CarbonmonClientError(status.INVALID_ARGUMENT, 'location must be a zone string, {lat, lon} or "auto"');
}

const factor = (f: IntensityQueryOptions["emissionFactor"]): EmissionFactorType =>
  f === "direct"
    ? EmissionFactorType.EMISSION_FACTOR_TYPE_DIRECT
    : f === "lifecycle"
      ? EmissionFactorType.EMISSION_FACTOR_TYPE_LIFECYCLE
      : EmissionFactorType.EMISSION_FACTOR_TYPE_UNSPECIFIED;
const gaps = (g: GapOptions["gapPolicy"]): GapPolicy =>
  g === "fill" ? GapPolicy.GAP_POLICY_FILL : g === "error" ? GapPolicy.GAP_POLICY_ERROR : GapPolicy.GAP_POLICY_UNSPECIFIED;

export function createIntensityClient(address: string, options: IntensityClientOptions = {}): IntensityClient {
  const channel = channelSecurity(options.security ?? {}, options.credentials);
  const raw = new CarbonIntensityClient(address, channel.credentials, { ...options.channelOptions, interceptors: channel.interceptors });
  const defaults: RpcDefaults = { deadlineMs: options.deadlineMs ?? 10_000, retries: options.retries ?? 2, onRetry: options.onRetry };
  const query = (location: LocationInput, o: IntensityQueryOptions = {}) => ({
    location: toLocation(location),
    emissionFactor: factor(o.emissionFactor),
    allowEstimated: o.allowEstimated,
    provider: o.provider ?? "",
  });
  return {
    address,
    raw,
    current: async (location, o) => unary(raw, raw.getCurrentIntensity, "GetCurrentIntensity", query(location, o), defaults, true, o),
    recent: async (location, o) => unary(raw, raw.getRecentIntensity, "GetRecentIntensity", query(location, o), defaults, true, o),
    history: async (location, start, end, o = {}) =>
      unary(
        raw,
        raw.getIntensityHistory,
        "GetIntensityHistory",
        { ...query(location, o), start, end, gapPolicy: gaps(o.gapPolicy) },
        defaults,
        true,
        o,
      ),
    forecast: async (location, o = {}) => {
      const { allowEstimated: _ignored, ...q } = query(location, o);
      return unary(
        raw,
        raw.getForecast,
        "GetForecast",
        { ...q, horizon: o.horizonMs === undefined ? undefined : durationFromMs(o.horizonMs) },
        defaults,
        true,
        o,
      );
    },
    computeEmissions: async (location, segments, o = {}) =>
      unary(
        raw,
        raw.computeEmissions,
        "ComputeEmissions",
        {
          ...query(location, o),
          gapPolicy: gaps(o.gapPolicy),
          segments: segments.map((s) => ({ start: s.start, end: s.end ?? s.start, energyJ: s.energyJ, device: s.device ?? "energy" })),
        },
        defaults,
        true,
        o,
      ),
    bestWindow: async (locations, o) =>
      unary(
        raw,
        raw.getBestWindow,
        "GetBestWindow",
        {
          locations: locations.map(toLocation),
          duration: durationFromMs(o.durationMs),
          earliestStart: o.earliestStart,
          latestEnd: o.latestEnd,
          energyJ: o.energyJ,
          emissionFactor: factor(o.emissionFactor),
          maxCandidates: o.maxCandidates ?? 0,
          provider: o.provider ?? "",
        },
        defaults,
        true,
        o,
      ),
    resolveLocation: async (location, o) => unary(raw, raw.resolveLocation, "ResolveLocation", toLocation(location), defaults, true, o),
    listProviders: async (o) => (await unary(raw, raw.listProviders, "ListProviders", {}, defaults, true, o)).providers,
    close: () => raw.close(),
  };
}
