/**
 * Grams for a window's energy: the agent asks the central intensity service (CARBONMON_INTENSITY_ADDR) to
 * price its energy pieces (ComputeEmissions, gaps filled from the fallback chain) and turns the answer
 * into the Measurement's carbon fields and status. It never throws: when the service cannot answer, the
 * status is PENDING with the reason, and the window manager asks again later.
 */
import { credentials, Metadata, status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import {
  CarbonIntensityClient,
  ComputeEmissionsRequest,
  EmissionFactorType,
  GapPolicy,
  IntensitySource,
  type ComputeEmissionsResponse,
  type IntensityPoint,
  type Location,
} from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { CarbonStatus, type CarbonPeriod, type Measurement } from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import type { AgentConfig } from "../../shared/config.js";
import { parseLatLon } from "../../shared/config.js";
import { AppError, Code } from "../../shared/errors.js";
import type { Logger } from "../../shared/log.js";
import { ipLocator } from "../../shared/net/ip-location.js";
import type { Domain } from "../devices/energy-source.js";

/** Segments per ComputeEmissions request: about 1 MB, well under gRPC's 4 MB message limit. */
const BATCH = 20_000;

/** One device's energy over [startMs, endMs), named "gpu:0", "cpu:1", "dram:0". */
export interface EnergyPiece {
  startMs: number;
  endMs: number;
  energyJ: number;
  device: string;
}

export function deviceName(domain: Domain, index: number): string {
  return `${domain}:${index}`;
}

/** What a pricing attempt gives a Measurement. */
export interface CarbonOutcome {
  status: CarbonStatus;
  reason: string;
  /** Grams per device name; empty unless FINAL or PROVISIONAL. */
  carbonG: Record<string, number>;
  periods: CarbonPeriod[];
}

export type CarbonConfig = Pick<AgentConfig, "intensityAddr" | "location" | "emissionFactor" | "allowEstimated" | "carbonTimeoutMs" | "ipinfoUrl">;

const iso = (d: Date | undefined): string => (d ? d.toISOString().replace(":00.000Z", "Z") : "?");
const periodName = (p: IntensityPoint | undefined): string => `${iso(p?.validFrom)}–${iso(p?.validTo)}`;

export class CarbonPricer {
  private readonly client: CarbonIntensityClient | undefined;
  private readonly locateByIp: () => Promise<{ coordinates: { lat: number; lon: number } }>;

  constructor(
    private readonly config: CarbonConfig,
    private readonly log: Logger,
  ) {
    this.locateByIp = ipLocator(config.ipinfoUrl);
    if (!config.intensityAddr) return;
    // Reconnect quickly once the service is back: pending grams are asked for again on a timer.
    this.client = new CarbonIntensityClient(config.intensityAddr, credentials.createInsecure(), {
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 5000,
    });
  }

  get enabled(): boolean {
    return this.client !== undefined;
  }

  /** Why windows carry no grams, when they do not. */
  get disabledReason(): string {
    return "no intensity service is configured (CARBONMON_INTENSITY_ADDR): energy only";
  }

  close(): void {
    this.client?.close();
  }

  /** Prices the pieces; PENDING (never an exception) when the service cannot answer within timeoutMs. */
  async price(pieces: readonly EnergyPiece[], timeoutMs = this.config.carbonTimeoutMs): Promise<CarbonOutcome> {
    if (pieces.length === 0) return { status: CarbonStatus.CARBON_STATUS_FINAL, reason: "", carbonG: {}, periods: [] };
    const deadline = new Date(Date.now() + timeoutMs); // grpc-js deadlines are wall-clock instants
    try {
      const location = await withinMs(this.location(), timeoutMs, "the IP-location lookup (CARBONMON_LOCATION=auto) took too long");
      const responses: ComputeEmissionsResponse[] = [];
      for (let i = 0; i < pieces.length; i += BATCH) {
        responses.push(await this.compute(location, pieces.slice(i, i + BATCH), deadline));
      }
      return this.outcome(responses);
    } catch (err) {
      const why = describeFailure(err);
      this.log.warn({ err: why }, "carbon: a window was not priced; it is asked again later");
      return { status: CarbonStatus.CARBON_STATUS_PENDING, reason: `not priced yet: ${why}; the agent asks again and GetWindow returns the grams`, carbonG: {}, periods: [] };
    }
  }

  private async location(): Promise<Location> {
    const where = this.config.location ?? "auto";
    if (where !== "auto") {
      const coordinates = parseLatLon(where);
      return coordinates ? { coordinates } : { zone: where };
    }
    return { coordinates: (await this.locateByIp()).coordinates };
  }

  private compute(location: Location, pieces: readonly EnergyPiece[], deadline: Date): Promise<ComputeEmissionsResponse> {
    const request = ComputeEmissionsRequest.fromPartial({
      location,
      emissionFactor: this.config.emissionFactor === "direct" ? EmissionFactorType.EMISSION_FACTOR_TYPE_DIRECT : EmissionFactorType.EMISSION_FACTOR_TYPE_LIFECYCLE,
      allowEstimated: this.config.allowEstimated,
      gapPolicy: GapPolicy.GAP_POLICY_FILL,
      segments: pieces.map((p) => ({ start: new Date(p.startMs), end: new Date(p.endMs), energyJ: p.energyJ, device: p.device })),
    });
    return new Promise((resolve, reject) => {
      this.client!.computeEmissions(request, new Metadata(), { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  /** Merges batch answers: grams per device, and one CarbonPeriod per intensity period. */
  private outcome(responses: readonly ComputeEmissionsResponse[]): CarbonOutcome {
    const carbonG: Record<string, number> = {};
    const periods = new Map<string, CarbonPeriod>();
    const filled: IntensityPoint[] = [];
    const provisional: IntensityPoint[] = [];
    for (const r of responses) {
      for (const [device, g] of Object.entries(r.carbonG)) carbonG[device] = (carbonG[device] ?? 0) + g;
      for (const p of r.periods) {
        const key = `${p.intensity?.provider}|${p.intensity?.zone}|${p.intensity?.validFrom?.getTime()}|${p.intensity?.validTo?.getTime()}`;
        const energyJ = Object.values(p.energyJ).reduce((a, b) => a + b, 0);
        const grams = Object.values(p.carbonG).reduce((a, b) => a + b, 0);
        const known = periods.get(key);
        if (known) {
          known.energyJ += energyJ;
          known.carbonG += grams;
          continue;
        }
        periods.set(key, { intensity: p.intensity, energyJ, carbonG: grams });
        if (p.filled) filled.push(p.intensity!);
        if (p.provisional) provisional.push(p.intensity!);
      }
    }
    const ordered = [...periods.values()].sort((a, b) => (a.intensity?.validFrom?.getTime() ?? 0) - (b.intensity?.validFrom?.getTime() ?? 0));
    const reasons = [
      ...provisional.map((p) => `${periodName(p)} uses ${p.source === IntensitySource.INTENSITY_SOURCE_FORECAST ? "a forecast" : p.isEstimated ? "an estimated" : "a live"} value (${p.provider})`),
      ...filled.map((p) => `${periodName(p)} had no value from the first provider and was filled from ${p.provider}`),
    ];
    const settled = reasons.length === 0 && !responses.some((r) => r.provisional);
    return {
      status: settled ? CarbonStatus.CARBON_STATUS_FINAL : CarbonStatus.CARBON_STATUS_PROVISIONAL,
      reason: settled ? "" : `${reasons.join("; ") || "some period's value may still change"}; GetWindow returns revised grams later`,
      carbonG,
      periods: ordered,
    };
  }
}

/** The promise's value, or an error after ms (the promise itself keeps running; its result is dropped). */
function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new AppError(Code.DeadlineExceeded, `${what} (over ${ms} ms)`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Why pricing failed, with the service's hint when it sent one. */
function describeFailure(err: unknown): string {
  const e = err as Partial<ServiceError>;
  if (e.code === undefined) return AppError.from(err).message; // before any call: the IP location lookup
  const hint = e.metadata?.get("carbonmon-hint")[0];
  return `the intensity service answered ${grpcStatus[e.code]}: ${e.details ?? e.message}${hint ? ` (hint: ${String(hint)})` : ""}`;
}

const DOMAINS: readonly Domain[] = ["gpu", "cpu", "dram"];

/** Writes an outcome into a Measurement: grams per device, periods, totals and status. */
export function applyCarbon(m: Measurement, outcome: CarbonOutcome): void {
  m.carbonStatus = outcome.status;
  m.carbonStatusReason = outcome.reason;
  m.carbonPeriods = outcome.periods;
  const maps: Record<Domain, Record<number, number>> = { gpu: m.gpuCarbonG, cpu: m.cpuCarbonG, dram: m.dramCarbonG };
  for (const map of Object.values(maps)) for (const k of Object.keys(map)) delete map[Number(k)];
  m.totalCarbonG = 0;
  for (const [device, grams] of Object.entries(outcome.carbonG)) {
    const [domain, index] = device.split(":");
    if (!DOMAINS.includes(domain as Domain) || index === undefined) continue;
    maps[domain as Domain][Number(index)] = grams;
    m.totalCarbonG += grams;
  }
}
