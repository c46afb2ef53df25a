/** Assembles a window's Measurement message from per-device results. */
import {
  ApproximationKind,
  type CarbonStatus,
  DeviceDomain,
  Measurement,
  type Approximation,
  type MissingDevice,
} from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import type { Domain } from "../devices/energy-source.js";
import type { IntervalEnergy, Sampler } from "../energy/sampler.js";
import type { SelectedDevice } from "../windows/selection.js";

/** What a window was asked to measure: persisted as JSON with the window. */
export interface WindowSpec {
  key: string;
  beginMs: number;
  labels: Record<string, string>;
  devices: SelectedDevice[];
  skipped: Array<{ domain: Domain; index: number; reason: string }>;
  skipGpus: boolean;
  skipCpus: boolean;
}

/** A device's figures in a window (results are in the order of the window's devices). */
export type DeviceResult = { missing: string } | ({ missing?: undefined; wrapsInferred?: number } & IntervalEnergy);

const DOMAIN: Record<Domain, DeviceDomain> = {
  gpu: DeviceDomain.DEVICE_DOMAIN_GPU,
  cpu: DeviceDomain.DEVICE_DOMAIN_CPU,
  dram: DeviceDomain.DEVICE_DOMAIN_DRAM,
};

/**
 * The approximations behind a device's figure. The kind says what was approximated (agent.proto documents
 * each); `detail` carries only what the kind does not (how many wraps were inferred), so a window over
 * 8 GPUs does not repeat the same sentences in every response, stored result and journal record.
 */
function approximations(domain: Domain, index: number, r: Exclude<DeviceResult, { missing: string }>, out: Approximation[]): void {
  // No closure here: it runs per device per EndWindow (and tsx names every closure it creates).
  const d = DOMAIN[domain];
  if (r.shortWindow) out.push({ domain: d, index, kind: ApproximationKind.APPROXIMATION_KIND_SHORT_WINDOW, detail: "" });
  if (r.powerIntegration) out.push({ domain: d, index, kind: ApproximationKind.APPROXIMATION_KIND_POWER_INTEGRATION, detail: "" });
  if (r.counterReset) out.push({ domain: d, index, kind: ApproximationKind.APPROXIMATION_KIND_COUNTER_RESET, detail: "" });
  if (r.wrapsInferred) {
    const detail = `${r.wrapsInferred} counter wrap(s) assumed while the agent was down`;
    out.push({ domain: d, index, kind: ApproximationKind.APPROXIMATION_KIND_WRAP_INFERRED, detail });
  }
  if (r.extrapolated) out.push({ domain: d, index, kind: ApproximationKind.APPROXIMATION_KIND_EDGE_EXTRAPOLATED, detail: "" });
}

function unavailableReason(domain: "cpu" | "dram", spec: WindowSpec, sampler: Sampler): string {
  if (spec.skipCpus) return "not requested (skip_cpus)";
  const skipped = spec.skipped.filter((s) => s.domain === domain);
  if (skipped.length > 0) return skipped.map((s) => `${domain} ${s.index}: ${s.reason}`).join("; ");
  if (spec.devices.some((d) => d.domain === domain)) return "";
  const rapl = sampler.states().find((s) => s.name === "rapl");
  if (rapl && rapl.status !== "ok") return [rapl.reason, rapl.hint].filter(Boolean).join(" — ");
  return domain === "dram" ? "no DRAM RAPL zone on this host (AMD CPUs have none)" : "no CPU package on this host";
}

export interface MeasurementInput {
  spec: WindowSpec;
  endMs: number;
  ended: boolean;
  results: DeviceResult[];
  sampler: Sampler;
  /** The carbon status until grams are applied (applyCarbon). */
  carbon: { status: CarbonStatus; reason: string };
}

export function buildMeasurement({ spec, endMs, ended, results, sampler, carbon }: MeasurementInput): Measurement {
  // Every field spelt out (the compiler checks none is missing) rather than Measurement.fromPartial, which
  // copies each map through arrays: this runs for every EndWindow.
  const m: Measurement = {
    key: spec.key,
    beginTime: new Date(spec.beginMs),
    endTime: new Date(endMs),
    timeS: (endMs - spec.beginMs) / 1000,
    gpuEnergyJ: {},
    cpuEnergyJ: {},
    dramEnergyJ: {},
    gpuCarbonG: {},
    cpuCarbonG: {},
    dramCarbonG: {},
    gpuEnergyUncertaintyJ: {},
    cpuEnergyUncertaintyJ: {},
    dramEnergyUncertaintyJ: {},
    approximations: [],
    missingDevices: [],
    cpuUnavailableReason: unavailableReason("cpu", spec, sampler),
    dramUnavailableReason: unavailableReason("dram", spec, sampler),
    carbonStatus: carbon.status,
    carbonStatusReason: carbon.reason,
    carbonPeriods: [],
    labels: { ...spec.labels },
    ended,
    gpuUuids: {},
    totalEnergyJ: 0,
    totalCarbonG: 0,
    simulated: false,
  };
  const energy = { gpu: m.gpuEnergyJ, cpu: m.cpuEnergyJ, dram: m.dramEnergyJ };
  const uncertainty = { gpu: m.gpuEnergyUncertaintyJ, cpu: m.cpuEnergyUncertaintyJ, dram: m.dramEnergyUncertaintyJ };
  for (let i = 0; i < spec.devices.length; i++) {
    const d = spec.devices[i]!;
    const r = results[i]!;
    if (d.uuid) m.gpuUuids[d.index] = d.uuid;
    if (sampler.device(d.deviceId)?.simulated) m.simulated = true;
    if (r.missing !== undefined) {
      const missing: MissingDevice = { domain: DOMAIN[d.domain], index: d.index, reason: r.missing, hint: "see GetHost for the device's state" };
      m.missingDevices.push(missing);
      continue;
    }
    energy[d.domain][d.index] = r.energyJ;
    uncertainty[d.domain][d.index] = r.uncertaintyJ;
    m.totalEnergyJ += r.energyJ;
    approximations(d.domain, d.index, r, m.approximations);
  }
  return m;
}
