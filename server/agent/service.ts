/**
 * The EnergyMonitor gRPC service. GetHost is served from the sampler's devices; the window and power RPCs
 * answer UNIMPLEMENTED until the agent-service issue lands.
 */
import { hostname } from "node:os";
import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import { EnergyMonitorService, type GetHostResponse } from "../../proto/gen/carbonmon/agent/v1/agent.js";
import type { AgentConfig } from "../shared/config.js";
import { unary, unimplemented } from "../shared/grpc-status.js";
import type { Logger } from "../shared/log.js";
import { durationFromMs } from "../shared/proto-time.js";
import type { ServiceRegistration } from "../shared/serve.js";
import { VERSION } from "../shared/version.js";
import { backendToProto, gpuToProto, raplZoneToProto } from "./codec.js";
import type { Sampler } from "./sampler.js";

export interface AgentContext {
  config: AgentConfig;
  sampler: Sampler;
  startedAtMs: number;
  log: Logger;
}

export function getHost(ctx: AgentContext): GetHostResponse {
  const devices = ctx.sampler.devices();
  const infoZones = ctx.sampler.sources.flatMap((s) => s.infoZones?.() ?? []);
  return {
    hostname: hostname(),
    agentVersion: VERSION,
    gpus: devices.filter((d) => d.domain === "gpu").map(gpuToProto),
    raplZones: [...devices.filter((d) => d.domain !== "gpu"), ...infoZones].map(raplZoneToProto),
    backends: ctx.sampler.states().map(backendToProto),
    samplingPeriod: durationFromMs(ctx.config.samplingPeriodMs),
    location: ctx.config.location ?? "",
    intensityAddr: ctx.config.intensityAddr ?? "",
    ...(ctx.config.cudaVisibleDevices !== undefined ? { cudaVisibleDevices: ctx.config.cudaVisibleDevices } : {}),
    openWindows: 0,
    maxOpenWindows: ctx.config.maxOpenWindows,
    startedAt: new Date(ctx.startedAtMs),
    now: new Date(ctx.sampler.now()),
  };
}

export function agentRegistration(ctx: AgentContext): ServiceRegistration {
  const implementation: UntypedServiceImplementation = {};
  for (const [method, def] of Object.entries(EnergyMonitorService)) {
    implementation[method] = unimplemented(def.path, def.responseStream);
  }
  implementation.getHost = unary(() => getHost(ctx), ctx.log);
  return { name: "carbonmon.agent.v1.EnergyMonitor", definition: EnergyMonitorService, implementation };
}
