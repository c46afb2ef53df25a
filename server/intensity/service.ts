/** The CarbonIntensity gRPC service: thin handlers over the Intensity domain and the watch hub. */
import type { ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import {
  CarbonIntensityService,
  ProviderHealth,
  ResolutionMethod,
  SignalType,
  type ProviderInfo,
  type BestWindowRequest,
  type BestWindowResponse,
  type ForecastRequest,
  type HistoryRequest,
  type IntensityPoint,
  type IntensityRequest as IntensityRequestMsg,
  type IntensitySeries,
  type ListProvidersResponse,
  type Location,
  type ResolvedLocation,
} from "../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { AppError, Code } from "../shared/errors.js";
import { unary as plainUnary } from "../shared/grpc-status.js";
import { withCall } from "./call-context.js";
import type { Logger } from "../shared/log.js";
import { msFromDuration } from "../shared/proto-time.js";
import type { ServiceRegistration } from "../shared/serve.js";
import { bestWindow } from "./best-window.js";
import { emissionFactorOf, gapPolicyOf, locationOf, pointToProto, windowToProto, type Attempt } from "./codec.js";
import type { Point } from "./core/point.js";
import type { EmissionsPool } from "./emissions-pool.js";
import type { Intensity, IntensityRequest } from "./intensity.js";
import type { Provider } from "./providers/provider.js";
import type { IntensityWatch } from "./watch.js";
import { DAY_MS } from "../shared/units.js";

const MAX_HISTORY_MS = 366 * DAY_MS;
const MAX_FORECAST_MS = 72 * 3_600_000;

function request(msg: {
  location?: Location | undefined;
  emissionFactor: number;
  allowEstimated?: boolean | undefined;
  provider: string;
}): IntensityRequest {
  return {
    location: locationOf(msg.location),
    emissionFactor: emissionFactorOf(msg.emissionFactor),
    allowEstimated: msg.allowEstimated ?? true,
    provider: msg.provider,
  };
}

function series(
  zone: string,
  points: readonly Point[],
  attempts: readonly Attempt[],
  gaps: ReadonlyArray<{ startMs: number; endMs: number }> = [],
): IntensitySeries {
  return {
    zone,
    points: points.map((p) => pointToProto(p)),
    attempts: attempts.map((a) => ({ ...a })),
    gaps: gaps.map((g) => ({ start: new Date(g.startMs), end: new Date(g.endMs) })),
  };
}

function range(start: Date | undefined, end: Date | undefined, nowMs: number): [number, number] {
  if (!start || !end) throw new AppError(Code.InvalidArgument, "start and end are required", { hint: "UTC timestamps, start before end" });
  const [fromMs, toMs] = [start.getTime(), Math.min(end.getTime(), nowMs)];
  if (!(fromMs < toMs)) throw new AppError(Code.InvalidArgument, "start must be before end (and before now)");
  if (toMs - fromMs > MAX_HISTORY_MS) throw new AppError(Code.InvalidArgument, "at most 366 days per request", { hint: "split the range" });
  return [fromMs, toMs];
}

const gapPolicy = gapPolicyOf;

const METHOD = {
  zone: ResolutionMethod.RESOLUTION_METHOD_ZONE,
  coordinates: ResolutionMethod.RESOLUTION_METHOD_COORDINATES,
  ip_lookup: ResolutionMethod.RESOLUTION_METHOD_IP_LOOKUP,
};

const HEALTH = {
  healthy: ProviderHealth.PROVIDER_HEALTH_HEALTHY,
  degraded: ProviderHealth.PROVIDER_HEALTH_DEGRADED,
  circuit_open: ProviderHealth.PROVIDER_HEALTH_CIRCUIT_OPEN,
};

async function providerInfo(intensity: Intensity, p: Provider, order: number): Promise<ProviderInfo> {
  const guard = intensity.guard(p.name);
  const health = p.unconfiguredReason !== undefined ? ProviderHealth.PROVIDER_HEALTH_UNCONFIGURED : HEALTH[guard?.health() ?? "healthy"];
  const remaining = (await guard?.budgetRemaining()) ?? Infinity;
  return {
    name: p.name,
    order,
    health,
    reason: p.unconfiguredReason ?? (health === ProviderHealth.PROVIDER_HEALTH_HEALTHY ? "" : (guard?.lastError ?? "")),
    // No budget (local providers): reported as -1, "unlimited".
    budgetRemaining: Number.isFinite(remaining) ? Math.floor(remaining) : -1,
    budgetCapacity: guard?.budget?.capacity ?? -1,
    ...(guard?.lastSuccessMs !== undefined ? { lastSuccess: new Date(guard.lastSuccessMs) } : {}),
    signal: p.signal === "marginal" ? SignalType.SIGNAL_TYPE_MARGINAL : SignalType.SIGNAL_TYPE_AVERAGE,
  };
}

/** ComputeEmissions' request and answer cross undecoded: its worker decodes and encodes them (emissions-pool.ts). */
const definition = {
  ...CarbonIntensityService,
  computeEmissions: {
    ...CarbonIntensityService.computeEmissions,
    requestDeserialize: (b: Buffer): Buffer => b,
    responseSerialize: (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  },
};

export function intensityRegistration(
  intensity: Intensity,
  watch: IntensityWatch,
  nowMs: () => number,
  log: Logger,
  pool: EmissionsPool,
): ServiceRegistration {
  // Every handler runs with its call's deadline and cancellation carried into its upstream requests.
  const unary = <Req, Res>(fn: (req: Req) => Promise<Res>, log: Logger) =>
    plainUnary<Req, Res>((req, call) => withCall(call as ServerUnaryCall<unknown, unknown>, () => fn(req)), log);
  const implementation: UntypedServiceImplementation = {
    getCurrentIntensity: unary(async (req: IntensityRequestMsg): Promise<IntensityPoint> => {
      const r = await intensity.current(request(req));
      return pointToProto(r.point, r.cached, r.attempts);
    }, log),
    getRecentIntensity: unary(async (req: IntensityRequestMsg): Promise<IntensitySeries> => {
      // The 24 hours that end with the current one, on hour boundaries (Zeus's 24-point history).
      const now = nowMs();
      const hourStart = Math.floor(now / 3_600_000) * 3_600_000;
      const h = await intensity.history(request(req), hourStart - DAY_MS + 3_600_000, now, "fill");
      return series(h.zone, h.points, h.attempts, h.gaps);
    }, log),
    getIntensityHistory: unary(async (req: HistoryRequest): Promise<IntensitySeries> => {
      const [fromMs, toMs] = range(req.start, req.end, nowMs());
      const h = await intensity.history(request(req), fromMs, toMs, gapPolicy(req.gapPolicy));
      return series(h.zone, h.points, h.attempts, h.gaps);
    }, log),
    getForecast: unary(async (req: ForecastRequest): Promise<IntensitySeries> => {
      const horizonMs = req.horizon ? msFromDuration(req.horizon) : 24 * 3_600_000;
      if (!(horizonMs > 0 && horizonMs <= MAX_FORECAST_MS))
        throw new AppError(Code.InvalidArgument, `horizon must be more than 0 and at most 72 h, got ${horizonMs / 1000} s`, {
          hint: 'e.g. "86400s"; unset: 24 h',
        });
      const f = await intensity.forecast({ ...request({ ...req, allowEstimated: true }) }, horizonMs);
      return series(f.zone, f.points, f.attempts);
    }, log),
    computeEmissions: unary(async (bytes: Buffer): Promise<Uint8Array> => {
      // Decoded, checked (limits first: nothing is fetched for a request over them), computed and its
      // answer encoded in a worker thread: the largest requests never block this event loop
      // (emissions-pool.ts). Only the history is fetched here.
      const job = await pool.open(bytes);
      try {
        const gaps = gapPolicy(job.fields.gapPolicy);
        const history = await intensity.emissionsHistory(request(job.fields), job.span, gaps);
        return await job.compute({
          points: history.points,
          filled: history.filled,
          gapPolicy: gaps,
          attempts: history.attempts,
          nowMs: nowMs(),
        });
      } finally {
        job.drop();
      }
    }, log),
    resolveLocation: unary(async (req: Location): Promise<ResolvedLocation> => {
      const r = await intensity.resolve(locationOf(req));
      const provider = intensity.candidates(r.zone, "")[0]?.name ?? "";
      return {
        zone: r.zone,
        ...(r.coordinates ? { coordinates: r.coordinates } : {}),
        provider,
        method: METHOD[r.method],
        detail: r.detail,
      };
    }, log),
    listProviders: unary(
      async (): Promise<ListProvidersResponse> => ({
        providers: await Promise.all(intensity.providers.map((p, order) => providerInfo(intensity, p, order))),
      }),
      log,
    ),
    getBestWindow: unary(async (req: BestWindowRequest): Promise<BestWindowResponse> => {
      if (!req.duration) throw new AppError(Code.InvalidArgument, "duration is required", { hint: 'e.g. "7200s" for a 2-hour job' });
      const locations = req.locations.map((l, i) => {
        try {
          return locationOf(l);
        } catch (err) {
          const e = AppError.from(err);
          throw new AppError(e.code, `locations[${i}]: ${e.message}`, { hint: e.hint });
        }
      });
      const r = await bestWindow(
        intensity,
        {
          locations,
          durationMs: msFromDuration(req.duration),
          ...(req.earliestStart ? { earliestStartMs: req.earliestStart.getTime() } : {}),
          ...(req.latestEnd ? { latestEndMs: req.latestEnd.getTime() } : {}),
          ...(req.energyJ !== undefined ? { energyJ: req.energyJ } : {}),
          emissionFactor: emissionFactorOf(req.emissionFactor),
          maxCandidates: req.maxCandidates,
          provider: req.provider,
        },
        nowMs(),
      );
      return {
        candidates: r.candidates.map((w) => windowToProto(w, req.locations[w.location])),
        runNow: r.runNow.map((w) => windowToProto(w, req.locations[w.location])),
        earliestStart: new Date(r.fromMs),
        latestEnd: new Date(r.toMs),
        notes: r.notes,
        skipped: r.skipped.map((s) => ({
          location: req.locations[s.location],
          zone: req.locations[s.location]?.zone ?? "",
          code: s.code,
          message: s.message,
        })),
      };
    }, log),
    watchIntensity: (call: Parameters<IntensityWatch["watch"]>[0]) => watch.watch(call, () => request(call.request)),
  };
  return { name: "carbonmon.intensity.v1.CarbonIntensity", definition, implementation };
}
