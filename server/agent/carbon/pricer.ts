/**
 * Grams for a window's energy: the agent asks the central intensity service (CARBONMON_INTENSITY_ADDR) to
 * price its energy pieces (ComputeEmissions, gaps filled from the fallback chain) and turns the answer
 * into the window's carbon figures (outcome.ts). It never throws: when the service cannot answer, the
 * status is pending with the reason, and repricing.ts says when to ask again.
 */
import type { AgentConfig } from "../../shared/config.js";
import { parseLatLon } from "../../shared/config.js";
import { AppError, Code } from "../../shared/errors.js";
import type { Coordinates } from "../../shared/geo.js";
import type { Logger } from "../../shared/log.js";
import { ipLocator } from "../../shared/net/ip-location.js";
import { UtcAnchor } from "../../shared/utc-anchor.js";
import type { CarbonOutcome, IntensityInfo, PricedPeriod } from "./outcome.js";

/** Segments per ComputeEmissions request: about 1 MB, well under gRPC's 4 MB message limit. */
const BATCH = 20_000;

/** One device's energy over [startMs, endMs), named "gpu:0", "cpu:1", "dram:0". */
export interface EnergyPiece {
  startMs: number;
  endMs: number;
  energyJ: number;
  device: string;
}

/** Where the grams are asked for: a zone, or coordinates the service resolves. */
export interface PricingLocation {
  zone?: string;
  coordinates?: Coordinates;
}

export interface EmissionsRequest {
  location: PricingLocation;
  emissionFactor: "direct" | "lifecycle";
  allowEstimated: boolean;
  pieces: readonly EnergyPiece[];
}

/** One ComputeEmissions answer, as plain data. */
export interface PricedBatch {
  carbonG: Record<string, number>;
  periods: Array<PricedPeriod & { filled: boolean; provisional: boolean }>;
  /** Some value may still change. */
  provisional: boolean;
}

/** The intensity service, as the pricer needs it (api/intensity-client.ts speaks the gRPC contract). */
export interface EmissionsService {
  /** Rejects with an AppError whose message says what the service answered. */
  computeEmissions(request: EmissionsRequest, deadline: Date): Promise<PricedBatch>;
  close(): void;
}

export type CarbonConfig = Pick<
  AgentConfig,
  "intensityAddr" | "location" | "emissionFactor" | "allowEstimated" | "carbonTimeoutMs" | "ipinfoUrl"
>;

const iso = (ms: number | undefined): string => (ms !== undefined ? new Date(ms).toISOString().replace(":00.000Z", "Z") : "?");
const periodName = (p: IntensityInfo | undefined): string => `${iso(p?.validFromMs)}–${iso(p?.validToMs)}`;

export class CarbonPricer {
  private readonly locateByIp: () => Promise<{ coordinates: Coordinates }>;

  /** service: the intensity service (undefined: none configured, windows carry energy only). */
  constructor(
    private readonly config: CarbonConfig,
    private readonly log: Logger,
    private readonly service: EmissionsService | undefined,
    /** Pieces are on the agent's clock; the intensity service's periods are UTC. */
    private readonly utc: UtcAnchor = new UtcAnchor(),
  ) {
    this.locateByIp = ipLocator(config.ipinfoUrl);
  }

  get enabled(): boolean {
    return this.service !== undefined;
  }

  /** Why windows carry no grams, when they do not. */
  get disabledReason(): string {
    return "no intensity service is configured (CARBONMON_INTENSITY_ADDR): energy only";
  }

  close(): void {
    this.service?.close();
  }

  /** Prices the pieces; PENDING (never an exception) when the service cannot answer within timeoutMs. */
  async price(pieces: readonly EnergyPiece[], timeoutMs = this.config.carbonTimeoutMs): Promise<CarbonOutcome> {
    if (pieces.length === 0) return { status: "final", reason: "", carbonG: {}, periods: [] };
    const deadline = new Date(Date.now() + timeoutMs); // grpc-js deadlines are wall-clock instants
    try {
      const location = await withinMs(this.location(), timeoutMs, "the IP-location lookup (CARBONMON_LOCATION=auto) took too long");
      const responses: PricedBatch[] = [];
      for (let i = 0; i < pieces.length; i += BATCH) {
        responses.push(await this.compute(location, pieces.slice(i, i + BATCH), deadline));
      }
      return this.outcome(responses);
    } catch (err) {
      const why = AppError.from(err).message;
      this.log.warn({ err: why }, "carbon: a window was not priced; it is asked again later");
      return {
        status: "pending",
        reason: `not priced yet: ${why}; the agent asks again and GetWindow returns the grams`,
        carbonG: {},
        periods: [],
      };
    }
  }

  private async location(): Promise<PricingLocation> {
    const where = this.config.location ?? "auto";
    if (where !== "auto") {
      const coordinates = parseLatLon(where);
      return coordinates ? { coordinates } : { zone: where };
    }
    return { coordinates: (await this.locateByIp()).coordinates };
  }

  private compute(location: PricingLocation, pieces: readonly EnergyPiece[], deadline: Date): Promise<PricedBatch> {
    const { emissionFactor, allowEstimated } = this.config;
    const stepMs = this.utc.stepMs;
    const inUtc = stepMs === 0 ? pieces : pieces.map((p) => ({ ...p, startMs: p.startMs + stepMs, endMs: p.endMs + stepMs }));
    return this.service!.computeEmissions(
      { location, emissionFactor: emissionFactor === "direct" ? "direct" : "lifecycle", allowEstimated, pieces: inUtc },
      deadline,
    );
  }

  /** Merges batch answers: grams per device, and one CarbonPeriod per intensity period. */
  private outcome(responses: readonly PricedBatch[]): CarbonOutcome {
    const carbonG: Record<string, number> = {};
    const periods = new Map<string, PricedPeriod>();
    const filled: IntensityInfo[] = [];
    const provisional: IntensityInfo[] = [];
    for (const r of responses) {
      for (const [device, g] of Object.entries(r.carbonG)) carbonG[device] = (carbonG[device] ?? 0) + g;
      for (const p of r.periods) {
        const key = `${p.intensity?.provider}|${p.intensity?.zone}|${p.intensity?.validFromMs}|${p.intensity?.validToMs}`;
        const { energyJ, carbonG: grams } = p;
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
    const ordered = [...periods.values()].sort((a, b) => (a.intensity?.validFromMs ?? 0) - (b.intensity?.validFromMs ?? 0));
    const reasons = [
      ...provisional.map(
        (p) =>
          `${periodName(p)} uses ${p.source === "INTENSITY_SOURCE_FORECAST" ? "a forecast" : p.isEstimated ? "an estimated" : "a live"} value (${p.provider})`,
      ),
      ...filled.map((p) => `${periodName(p)} had no value from the first provider and was filled from ${p.provider}`),
    ];
    const settled = reasons.length === 0 && !responses.some((r) => r.provisional);
    return {
      status: settled ? "final" : "provisional",
      reason: settled ? "" : `${reasons.join("; ") || "some period's value may still change"}; GetWindow returns revised grams later`,
      carbonG,
      periods: ordered,
    };
  }
}

/** The promise's value, or an error after ms (the promise itself keeps running; its result is dropped). */
function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new AppError(Code.DeadlineExceeded, `${what} (over ${ms} ms)`)), ms)),
  );
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
