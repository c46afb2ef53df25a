/**
 * The agent's side of the intensity service's contract: ComputeEmissions over gRPC, translated into the
 * carbon pricer's plain data (carbon/pricer.ts EmissionsService). A failed call becomes an AppError whose
 * message says what the service answered, with its hint.
 */
import { Metadata, status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { channelSecurity, clientSecurityFromFiles } from "../../../client/security.js";
import {
  CarbonIntensityClient,
  ComputeEmissionsRequest,
  EmissionFactorType,
  emissionFactorTypeToJSON,
  GapPolicy,
  type ComputeEmissionsResponse,
  type IntensityPoint,
  intensitySourceToJSON,
  signalTypeToJSON,
} from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import type { ClientSecurityConfig } from "../../shared/config.js";
import { AppError, Code } from "../../shared/errors.js";
import type { IntensityInfo } from "../carbon/outcome.js";
import type { EmissionsRequest, EmissionsService, PricedBatch } from "../carbon/pricer.js";

const ms = (d: Date | undefined): number | undefined => d?.getTime();

export function intensityInfo(p: IntensityPoint): IntensityInfo {
  return {
    zone: p.zone,
    gPerKwh: p.gPerKwh,
    validFromMs: ms(p.validFrom),
    validToMs: ms(p.validTo),
    isEstimated: p.isEstimated,
    estimationMethod: p.estimationMethod,
    provider: p.provider,
    signal: signalTypeToJSON(p.signal),
    emissionFactor: emissionFactorTypeToJSON(p.emissionFactor),
    source: intensitySourceToJSON(p.source),
    fetchedAtMs: ms(p.fetchedAt),
    sourceUpdatedAtMs: ms(p.sourceUpdatedAt),
    attempts: p.attempts.map((a) => ({ provider: a.provider, code: a.code, message: a.message })),
    cached: p.cached,
  };
}

function batch(r: ComputeEmissionsResponse): PricedBatch {
  return {
    carbonG: r.carbonG,
    provisional: r.provisional,
    periods: r.periods.map((p) => ({
      intensity: p.intensity ? intensityInfo(p.intensity) : undefined,
      energyJ: Object.values(p.energyJ).reduce((a, b) => a + b, 0),
      carbonG: Object.values(p.carbonG).reduce((a, b) => a + b, 0),
      filled: p.filled,
      provisional: p.provisional,
    })),
  };
}

/** Why a call failed, with the service's hint when it sent one. */
function describeFailure(e: ServiceError): string {
  const hint = e.metadata?.get("carbonmon-hint")[0];
  return `the intensity service answered ${grpcStatus[e.code]}: ${e.details ?? e.message}${hint ? ` (hint: ${String(hint)})` : ""}`;
}

export class IntensityServiceClient implements EmissionsService {
  private readonly client: CarbonIntensityClient;

  /** Files are read here, once: an unreadable one fails the agent's start with its name. */
  constructor(
    address: string,
    security: ClientSecurityConfig = { caFile: undefined, certFile: undefined, keyFile: undefined, tokenFile: undefined },
  ) {
    let channel: ReturnType<typeof channelSecurity>;
    try {
      channel = channelSecurity(clientSecurityFromFiles(security));
    } catch (err) {
      throw new AppError(Code.FailedPrecondition, `CARBONMON_INTENSITY_TLS_* / CARBONMON_INTENSITY_TOKEN_FILE: ${(err as Error).message}`);
    }
    // Reconnect quickly once the service is back: pending grams are asked for again on a timer.
    this.client = new CarbonIntensityClient(address, channel.credentials, {
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 5000,
      interceptors: channel.interceptors,
    });
  }

  computeEmissions(req: EmissionsRequest, deadline: Date): Promise<PricedBatch> {
    const request = ComputeEmissionsRequest.fromPartial({
      location: req.location,
      emissionFactor:
        req.emissionFactor === "direct"
          ? EmissionFactorType.EMISSION_FACTOR_TYPE_DIRECT
          : EmissionFactorType.EMISSION_FACTOR_TYPE_LIFECYCLE,
      allowEstimated: req.allowEstimated,
      gapPolicy: GapPolicy.GAP_POLICY_FILL,
      segments: req.pieces.map((p) => ({ start: new Date(p.startMs), end: new Date(p.endMs), energyJ: p.energyJ, device: p.device })),
    });
    return new Promise((resolve, reject) => {
      this.client.computeEmissions(request, new Metadata(), { deadline }, (err, res) =>
        err ? reject(new AppError(Code.Unavailable, describeFailure(err))) : resolve(batch(res)),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
