/**
 * The EnergyMonitor gRPC service: thin handlers over the window manager, the power hub and the sampler.
 * Errors are AppErrors; unary() maps them to gRPC statuses.
 */
import type { Metadata, UntypedServiceImplementation } from "@grpc/grpc-js";
import {
  EnergyMonitorService,
  type BeginWindowRequest,
  type CancelWindowRequest,
  type CancelWindowResponse,
  type EndWindowRequest,
  type GetHostResponse,
  type GetWindowRequest,
  type ListWindowsRequest,
} from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import type { AgentConfig } from "../../shared/config.js";
import { unary } from "../../shared/grpc-status.js";
import type { UtcAnchor } from "../../shared/utc-anchor.js";
import type { Logger } from "../../shared/log.js";
import { durationFromMs } from "../../shared/proto-time.js";
import type { ServiceRegistration } from "../../shared/serve.js";
import { VERSION } from "../../shared/version.js";
import { isAdmin, principalOf } from "../../shared/security/principal.js";
import { backendToProto, gpuToProto, raplZoneToProto } from "./host-codec.js";
import type { PowerHub } from "./power-stream.js";
import { encodeBeginResponse, encodeListResponse } from "./exact-times.js";
import { serializeEncoded } from "./measurement-codec.js";
import type { Sampler } from "../energy/sampler.js";
import type { Caller, WindowManager } from "../windows/manager.js";
import { AppError, Code } from "../../shared/errors.js";
import { deserializeBeginRequest, type ReadBeginRequest } from "./begin-request.js";

export interface AgentContext {
  config: AgentConfig;
  sampler: Sampler;
  power: PowerHub;
  windows: WindowManager;
  startedAtMs: number;
  /** UTC of the agent clock's instants (every time on the wire goes through it). */
  utc: UtcAnchor;
  log: Logger;
}

export function getHost(ctx: AgentContext): GetHostResponse {
  const devices = ctx.sampler.devices();
  const infoZones = ctx.sampler.sources.flatMap((s) => s.infoZones?.() ?? []);
  return {
    hostname: ctx.config.hostname,
    agentVersion: VERSION,
    gpus: devices.filter((d) => d.domain === "gpu").map(gpuToProto),
    raplZones: [...devices.filter((d) => d.domain !== "gpu"), ...infoZones].map(raplZoneToProto),
    backends: ctx.sampler.states().map(backendToProto),
    samplingPeriod: durationFromMs(ctx.config.samplingPeriodMs),
    location: ctx.config.intensityAddr ? (ctx.config.location ?? "auto") : (ctx.config.location ?? ""),
    intensityAddr: ctx.config.intensityAddr ?? "",
    ...(ctx.config.cudaVisibleDevices !== undefined ? { cudaVisibleDevices: ctx.config.cudaVisibleDevices } : {}),
    openWindows: ctx.windows.openCount,
    maxOpenWindows: ctx.config.maxOpenWindows,
    startedAt: new Date(ctx.utc.toUtcMs(ctx.startedAtMs)),
    now: new Date(ctx.utc.toUtcMs(ctx.sampler.now())),
    idleSamplingPeriod: durationFromMs(ctx.config.idleSamplingPeriodMs),
    samplingActive: ctx.sampler.active,
  };
}

/** The call's principal (attached by the auth interceptor) as the window manager sees it. */
function callerOf(call: { metadata: Metadata }): Caller {
  const p = principalOf(call);
  return { name: p.name, admin: isAdmin(p) };
}

function beginWindow(ctx: AgentContext, req: BeginWindowRequest, caller: Caller): Uint8Array {
  const unkeepable = (req as Partial<ReadBeginRequest>).unkeepableLabelKeys ?? [];
  if (unkeepable.length > 0) {
    throw new AppError(Code.InvalidArgument, `label key ${JSON.stringify(unkeepable[0]!.slice(0, 40))} cannot be stored`, {
      hint: "choose another label key",
    });
  }
  const { key, beginMs, indices } = ctx.windows.begin(
    {
      key: req.key,
      labels: req.labels,
      gpuIndices: req.gpuIndices,
      cpuIndices: req.cpuIndices,
      cudaVisibleDevices: req.cudaVisibleDevices,
      skipGpus: req.skipGpus,
      skipCpus: req.skipCpus,
    },
    caller,
  );
  return encodeBeginResponse(
    { key, gpuIndices: indices.gpu, nvmlGpuIndices: indices.nvmlGpu, cpuIndices: indices.cpu },
    ctx.utc.toUtcMs(beginMs),
  );
}

function listWindows(ctx: AgentContext, req: ListWindowsRequest, caller: Caller): Uint8Array {
  const stepMs = ctx.utc.stepMs;
  return encodeListResponse(
    ctx.windows.list(req.includeEnded, caller).map(({ spec, endMs }) => ({
      info: {
        key: spec.key,
        gpuIndices: spec.devices.filter((d) => d.domain === "gpu").map((d) => d.index),
        cpuIndices: spec.devices.filter((d) => d.domain === "cpu").map((d) => d.index),
        labels: spec.labels,
        ended: endMs !== undefined,
      },
      beginUtcMs: spec.beginMs + stepMs,
      endUtcMs: endMs === undefined ? undefined : endMs + stepMs,
    })),
  );
}

/** The service as the agent serves it: Measurements go out as the bytes the store journaled (measurement-codec.ts), encoded once. */
export const AGENT_SERVICE_DEFINITION = {
  ...EnergyMonitorService,
  endWindow: { ...EnergyMonitorService.endWindow, responseSerialize: serializeEncoded },
  getWindow: { ...EnergyMonitorService.getWindow, responseSerialize: serializeEncoded },
  watchPower: { ...EnergyMonitorService.watchPower, responseSerialize: serializeEncoded },
  beginWindow: { ...EnergyMonitorService.beginWindow, requestDeserialize: deserializeBeginRequest, responseSerialize: serializeEncoded },
  listWindows: { ...EnergyMonitorService.listWindows, responseSerialize: serializeEncoded },
} as const;

export function agentRegistration(ctx: AgentContext): ServiceRegistration {
  const w = ctx.windows;
  const implementation: UntypedServiceImplementation = {
    getHost: unary(() => getHost(ctx), ctx.log),
    beginWindow: unary((req: BeginWindowRequest, call) => beginWindow(ctx, req, callerOf(call)), ctx.log),
    endWindow: unary(
      (req: EndWindowRequest, call): Promise<Uint8Array> => w.end(req.key, req.waitForCounterUpdate, callerOf(call)),
      ctx.log,
    ),
    getWindow: unary((req: GetWindowRequest, call) => w.get(req.key, callerOf(call)), ctx.log),
    listWindows: unary((req: ListWindowsRequest, call) => listWindows(ctx, req, callerOf(call)), ctx.log),
    cancelWindow: unary((req: CancelWindowRequest, call): CancelWindowResponse => {
      const { key, beginMs } = w.cancel(req.key, callerOf(call));
      return { key, beginTime: new Date(ctx.utc.toUtcMs(beginMs)) };
    }, ctx.log),
    watchPower: (call: Parameters<PowerHub["watch"]>[0]) => ctx.power.watch(call, principalOf(call).name),
  };
  return { name: "carbonmon.agent.v1.EnergyMonitor", definition: AGENT_SERVICE_DEFINITION, implementation };
}
