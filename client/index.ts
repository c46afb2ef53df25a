/** The carbonmon TypeScript client. */
export { CarbonmonClientError, fromServiceError, type GrpcCodeName } from "./client-error.js";
export {
  createAgentClient,
  type AgentClient,
  type AgentClientOptions,
  type BeginWindowOptions,
  type EndWindowOptions,
  type MeasureResult,
  type WatchPowerOptions,
} from "./agent-client.js";
export {
  createIntensityClient,
  type BestWindowOptions,
  type GapOptions,
  type IntensityClient,
  type IntensityClientOptions,
  type IntensityQueryOptions,
  type LocationInput,
  type SegmentInput,
} from "./intensity-client.js";
export { FleetMonitor, type FleetBeginResult, type FleetFailure, type FleetMeasurement, type FleetTotal } from "./fleet.js";
export { toCarbonEmissionMeasurement, type CarbonEmissionMeasurement, type PerDevice } from "./measurement.js";
export type { CallOptionsLite, RetryListener } from "./rpc.js";
export type {
  BeginWindowResponse,
  CancelWindowResponse,
  GetHostResponse,
  Measurement,
  PowerSample,
  WindowInfo,
} from "../proto/gen/carbonmon/agent/v1/agent.js";
export type {
  BestWindowResponse,
  ComputeEmissionsResponse,
  IntensityPoint,
  IntensitySeries,
  ProviderInfo,
  ResolvedLocation,
  SkippedLocation,
  WindowCandidate,
} from "../proto/gen/carbonmon/intensity/v1/intensity.js";
export {
  channelSecurity,
  clientSecurityFromFiles,
  tokenInterceptor,
  type ClientSecurityFiles,
  type ClientSecurityOptions,
  type ClientTls,
} from "./security.js";
