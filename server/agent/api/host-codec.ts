/** Domain objects to generated protobuf messages (and back) for the agent. */
import type { BackendState as BackendStateMsg, GpuDevice, RaplZone } from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import { DeviceStatus, RaplZoneKind } from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import type { BackendState, Device, DeviceStatus as Status, InfoZone, RaplKind } from "../devices/energy-source.js";

const STATUS: Record<Status, DeviceStatus> = {
  ok: DeviceStatus.DEVICE_STATUS_OK,
  unavailable: DeviceStatus.DEVICE_STATUS_UNAVAILABLE,
  lost: DeviceStatus.DEVICE_STATUS_LOST,
};

const ZONE_KIND: Record<RaplKind, RaplZoneKind> = {
  package: RaplZoneKind.RAPL_ZONE_KIND_PACKAGE,
  dram: RaplZoneKind.RAPL_ZONE_KIND_DRAM,
  core: RaplZoneKind.RAPL_ZONE_KIND_CORE,
  uncore: RaplZoneKind.RAPL_ZONE_KIND_UNCORE,
  psys: RaplZoneKind.RAPL_ZONE_KIND_PSYS,
};

export function backendToProto(s: BackendState): BackendStateMsg {
  return { name: s.name, status: STATUS[s.status], reason: s.reason ?? "", hint: s.hint ?? "", version: s.version ?? "" };
}

export function gpuToProto(d: Device): GpuDevice {
  return {
    index: d.index,
    uuid: d.uuid ?? "",
    name: d.name,
    powerLimitW: d.powerLimitW ?? 0,
    hasEnergyCounter: d.hasEnergyCounter,
    status: STATUS[d.status],
    statusReason: d.statusReason ?? "",
    migEnabled: d.migEnabled ?? false,
    simulated: d.simulated ?? false,
  };
}

export function raplZoneToProto(z: Device | InfoZone): RaplZone {
  const kind: RaplKind = "kind" in z ? z.kind : z.domain === "dram" ? "dram" : "package";
  return {
    index: z.index,
    kind: ZONE_KIND[kind],
    name: z.name,
    path: z.path ?? "",
    maxEnergyRangeJ: z.counterRangeJ ?? 0,
    status: STATUS[z.status],
    statusReason: z.statusReason ?? "",
  };
}
