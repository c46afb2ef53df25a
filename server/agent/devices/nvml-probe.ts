/**
 * NVML probing, in the worker: loads the library, initialises it, and decides once per GPU how it will be
 * read (energy field 83, the energy call, or power only; instant power at GPU or MODULE scope, or the 1 s
 * mean; memory power where supported). Problems become states and reasons, never exceptions.
 */
import { AppError } from "../../shared/errors.js";
import { mWToW } from "../../shared/units.js";
import type { BackendState, Device } from "./energy-source.js";
import {
  FIELD_POWER_AVERAGE,
  FIELD_POWER_INSTANT,
  FIELD_TOTAL_ENERGY,
  openNvml,
  SCOPE_GPU,
  SCOPE_MEMORY,
  SCOPE_MODULE,
  type FieldRequest,
  type Handle,
  type Nvml,
} from "./nvml-binding.js";
import { NO_LIBRARY_HINT, NVML_SUCCESS, nvmlError } from "./nvml-errors.js";

/** How one GPU is read, decided once at probe time. */
export interface GpuPlan {
  device: Device;
  handle: Handle;
  energy: "field" | "call" | "none";
  /** Instant power field request, or undefined: nvmlDeviceGetPowerUsage (1 s average). */
  power: FieldRequest | undefined;
  memoryPower: boolean;
}

function fieldOk(nvml: Nvml, dev: Handle, req: FieldRequest): boolean {
  const { ret, results } = nvml.fieldValues(dev, [req]);
  return ret === NVML_SUCCESS && results[0]!.ret === NVML_SUCCESS;
}

function planGpu(nvml: Nvml, index: number): GpuPlan | Device {
  const id = `gpu:${index}`;
  let handle: Handle;
  try {
    handle = nvml.handle(index);
    const powerLimitW = mWToW(nvml.powerLimitMw(handle));
    const device: Device = {
      id,
      domain: "gpu",
      index,
      name: nvml.name(handle),
      uuid: nvml.uuid(handle),
      powerLimitW,
      ...(powerLimitW > 0 ? { maxPowerW: powerLimitW } : {}),
      migEnabled: nvml.migEnabled(handle),
      hasEnergyCounter: true,
      status: "ok",
    };
    const energy = fieldOk(nvml, handle, { fieldId: FIELD_TOTAL_ENERGY, scopeId: SCOPE_GPU })
      ? "field"
      : nvml.totalEnergyMj(handle)[0] === NVML_SUCCESS
        ? "call"
        : "none";
    device.hasEnergyCounter = energy !== "none";
    const power = [SCOPE_GPU, SCOPE_MODULE]
      .map((scopeId) => ({ fieldId: FIELD_POWER_INSTANT, scopeId }))
      .find((req) => fieldOk(nvml, handle, req));
    const memoryPower = fieldOk(nvml, handle, { fieldId: FIELD_POWER_AVERAGE, scopeId: SCOPE_MEMORY });
    return { device, handle, energy, power, memoryPower };
  } catch (err) {
    const reason = AppError.from(err).detail;
    return { id, domain: "gpu", index, name: "unknown", hasEnergyCounter: false, status: "lost", statusReason: reason };
  }
}

export function probe(data: { libraryPath: string }): { nvml: Nvml | undefined; state: BackendState; plans: GpuPlan[]; devices: Device[] } {
  let nvml: Nvml;
  try {
    nvml = openNvml(data.libraryPath);
  } catch (err) {
    const reason = `cannot load ${data.libraryPath}: ${(err as Error).message}`;
    return { nvml: undefined, state: { name: "nvml", status: "unavailable", reason, hint: NO_LIBRARY_HINT }, plans: [], devices: [] };
  }
  const ret = nvml.init();
  if (ret !== NVML_SUCCESS) {
    const e = nvmlError("nvmlInit_v2", ret, nvml.errorString(ret));
    return {
      nvml: undefined,
      state: { name: "nvml", status: "unavailable", reason: e.message, ...(e.hint ? { hint: e.hint } : {}) },
      plans: [],
      devices: [],
    };
  }
  const version = nvml.driverVersion();
  const planned = Array.from({ length: nvml.count() }, (_, i) => planGpu(nvml, i));
  const plans = planned.filter((p): p is GpuPlan => "handle" in p);
  const devices = planned.map((p) => ("handle" in p ? p.device : p));
  const state: BackendState = { name: "nvml", status: "ok", version };
  if (devices.length === 0) Object.assign(state, { status: "unavailable", reason: "NVML found no GPU" });
  return { nvml, state, plans, devices };
}
