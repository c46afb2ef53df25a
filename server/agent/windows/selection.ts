/**
 * Which devices a request measures. GPU indices are the caller's (positions in its CUDA_VISIBLE_DEVICES);
 * CPU indices are RAPL package numbers, and each selected package brings its DRAM zone when it has one.
 * Shared by BeginWindow and WatchPower so that both read indices the same way.
 */
import { AppError, Code } from "../../shared/errors.js";
import type { Device, Domain } from "../devices/energy-source.js";
import { mapFrameworkIndices, resolveVisibleDevices } from "../devices/visible-devices.js";

export interface SelectedDevice {
  domain: Domain;
  /** The caller's index: framework GPU index, or CPU package. */
  index: number;
  /** The sampler's device id ("gpu:<nvml>", "cpu:N", "dram:N"). */
  deviceId: string;
  uuid?: string;
}

export interface DeviceRequest {
  gpuIndices: readonly number[];
  cpuIndices: readonly number[];
  cudaVisibleDevices?: string | undefined;
  skipGpus: boolean;
  skipCpus: boolean;
}

export interface Selection {
  devices: SelectedDevice[];
  /** Devices that "all" would have included but that cannot be read, with the reason. */
  skipped: Array<{ domain: Domain; index: number; reason: string }>;
}

/** More indices than any host has devices: refused before any work (a request's lists are echoed nowhere). */
export const MAX_INDICES = 256;
/** CUDA_VISIBLE_DEVICES as a client sends it: a list of ids or UUIDs, never this long. */
export const MAX_VISIBLE_DEVICES_CHARS = 4096;

function checkIndices(name: "gpu_indices" | "cpu_indices", indices: readonly number[], what: string): void {
  if (indices.length > MAX_INDICES) {
    throw new AppError(Code.InvalidArgument, `${indices.length} ${name}: at most ${MAX_INDICES}`, {
      hint: `list each ${what} once, or leave ${name} empty for all`,
    });
  }
  // Pairwise: at most 256 entries, usually a handful, and BeginWindow allocates nothing for it.
  for (let a = 1; a < indices.length; a++) {
    for (let b = 0; b < a; b++) {
      if (indices[a] !== indices[b]) continue;
      throw new AppError(Code.InvalidArgument, `${name} lists ${what} ${indices[a]} more than once`, {
        hint: `list each ${what} once: a device counted twice would double its energy in the totals`,
      });
    }
  }
}

/**
 * The bounds every device request must meet, checked before any work is done for it (BeginWindow and
 * WatchPower): list lengths, repeated indices, the size of cuda_visible_devices.
 */
export function validateDeviceRequest(req: DeviceRequest): void {
  checkIndices("gpu_indices", req.gpuIndices, "GPU");
  checkIndices("cpu_indices", req.cpuIndices, "CPU package");
  if (req.cudaVisibleDevices !== undefined && req.cudaVisibleDevices.length > MAX_VISIBLE_DEVICES_CHARS) {
    throw new AppError(
      Code.InvalidArgument,
      `cuda_visible_devices is ${req.cudaVisibleDevices.length} characters: at most ${MAX_VISIBLE_DEVICES_CHARS}`,
      {
        hint: "send the CUDA_VISIBLE_DEVICES your process sees (a short list of indices or UUIDs)",
      },
    );
  }
}

function unavailable(device: Device, what: string): AppError {
  return new AppError(Code.FailedPrecondition, `${what} cannot be measured: ${device.statusReason ?? device.status}`, {
    hint: "leave it out of the request, or see GetHost for the reason",
  });
}

function selectGpus(devices: readonly Device[], req: DeviceRequest, agentCvd: string | undefined, out: Selection): void {
  if (req.skipGpus) return;
  const gpus = devices.filter((d) => d.domain === "gpu");
  const visible = resolveVisibleDevices(
    req.cudaVisibleDevices ?? agentCvd,
    gpus.map((g) => ({ index: g.index, uuid: g.uuid ?? "" })),
  );
  const explicit = req.gpuIndices.length > 0;
  const frameworkIndices = explicit ? [...req.gpuIndices] : visible.map((_, i) => i);
  const nvmlIndices = mapFrameworkIndices(frameworkIndices, visible);
  frameworkIndices.forEach((index, i) => {
    const device = gpus.find((g) => g.index === nvmlIndices[i])!;
    if (device.status !== "ok") {
      if (explicit) throw unavailable(device, `GPU ${index} (NVML ${device.index})`);
      out.skipped.push({ domain: "gpu", index, reason: device.statusReason ?? device.status });
      return;
    }
    out.devices.push({ domain: "gpu", index, deviceId: device.id, ...(device.uuid ? { uuid: device.uuid } : {}) });
  });
}

function selectCpus(devices: readonly Device[], req: DeviceRequest, out: Selection): void {
  if (req.skipCpus) return;
  const packages = devices.filter((d) => d.domain === "cpu");
  const explicit = req.cpuIndices.length > 0;
  const wanted = explicit ? [...req.cpuIndices] : packages.map((p) => p.index);
  for (const index of wanted) {
    const pkg = packages.find((p) => p.index === index);
    if (!pkg) {
      const have = packages.map((p) => p.index).join(", ");
      throw new AppError(Code.InvalidArgument, `no CPU package ${index} on this host (${have ? `packages ${have}` : "no RAPL packages"})`, {
        hint: "cpu_indices are RAPL package numbers: see GetHost rapl_zones",
      });
    }
    for (const device of [pkg, devices.find((d) => d.domain === "dram" && d.index === index)]) {
      if (!device) continue;
      if (device.status === "ok") out.devices.push({ domain: device.domain, index, deviceId: device.id });
      else if (explicit && device === pkg) throw unavailable(device, `CPU package ${index}`);
      else out.skipped.push({ domain: device.domain, index, reason: device.statusReason ?? device.status });
    }
  }
}

export function selectDevices(devices: readonly Device[], req: DeviceRequest, agentCvd: string | undefined): Selection {
  validateDeviceRequest(req);
  const out: Selection = { devices: [], skipped: [] };
  selectGpus(devices, req, agentCvd, out);
  selectCpus(devices, req, out);
  return out;
}
