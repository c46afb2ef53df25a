/**
 * An ended (or running) window's result as the agent's own plain data: no protobuf here. api/
 * measurement-codec.ts turns it into Measurement bytes once; the store keeps those bytes.
 */
import type { Domain } from "../devices/energy-source.js";
import type { IntervalEnergy, Sampler } from "../energy/sampler.js";
import type { CarbonFigures } from "../carbon/outcome.js";
import type { SelectedDevice } from "./selection.js";

/** What a window key may be: 1-128 characters of [A-Za-z0-9._:/@+=-]. */
export const WINDOW_KEY_PATTERN = /^[A-Za-z0-9._:/@+=-]{1,128}$/;

/** What a window was asked to measure: persisted as JSON with the window (storage/records.ts). */
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

/** One measured device: its energy, the bound on its error, and what was approximated. */
export interface DeviceFigures {
  domain: Domain;
  index: number;
  energyJ: number;
  uncertaintyJ: number;
  shortWindow: boolean;
  powerIntegration: boolean;
  counterReset: boolean;
  extrapolated: boolean;
  /** Counter wraps assumed while the agent was down (0: none). */
  wrapsInferred: number;
}

/** A selected device that could not be measured, and why. */
export interface MissingFigures {
  domain: Domain;
  index: number;
  reason: string;
}

export interface WindowResult {
  key: string;
  /** UTC, ms since the epoch, fractional (edges are measured finer than a millisecond); time_s is the monotonic duration. */
  beginMs: number;
  /** For an open window: the instant the running totals refer to. */
  endMs: number;
  timeS: number;
  ended: boolean;
  labels: Record<string, string>;
  devices: DeviceFigures[];
  missing: MissingFigures[];
  /** GPU index (caller's numbering) to NVML UUID. */
  gpuUuids: Record<number, string>;
  cpuUnavailableReason: string;
  dramUnavailableReason: string;
  totalEnergyJ: number;
  /** Some device is simulated (demo mode): not measurements. */
  simulated: boolean;
  carbon: CarbonFigures;
}

/** Encodes results for the wire and the store, and reads stored ones back (api/measurement-codec.ts). */
export interface ResultCodec {
  encode(result: WindowResult): Uint8Array;
  decode(stored: Uint8Array | string): WindowResult;
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

export interface ResultInput {
  spec: WindowSpec;
  endMs: number;
  ended: boolean;
  results: DeviceResult[];
  sampler: Sampler;
  /** The carbon figures until grams are applied (carbon/outcome.ts applyCarbon). */
  carbon: CarbonFigures;
  /** UTC minus the agent's clock now (shared/utc-anchor.ts): both edges are labelled with it. */
  utcStepMs: number;
}

export function buildResult({ spec, endMs, ended, results, sampler, carbon, utcStepMs }: ResultInput): WindowResult {
  const r: WindowResult = {
    key: spec.key,
    // One anchor for both edges: end - begin is the monotonic duration, whatever the system clock did.
    beginMs: spec.beginMs + utcStepMs,
    endMs: endMs + utcStepMs,
    timeS: (endMs - spec.beginMs) / 1000,
    ended,
    labels: { ...spec.labels },
    devices: [],
    missing: [],
    gpuUuids: {},
    cpuUnavailableReason: unavailableReason("cpu", spec, sampler),
    dramUnavailableReason: unavailableReason("dram", spec, sampler),
    totalEnergyJ: 0,
    simulated: false,
    carbon,
  };
  for (let i = 0; i < spec.devices.length; i++) {
    const d = spec.devices[i]!;
    const x = results[i]!;
    if (d.uuid) r.gpuUuids[d.index] = d.uuid;
    if (sampler.device(d.deviceId)?.simulated) r.simulated = true;
    if (x.missing !== undefined) {
      r.missing.push({ domain: d.domain, index: d.index, reason: x.missing });
      continue;
    }
    r.devices.push({
      domain: d.domain,
      index: d.index,
      energyJ: x.energyJ,
      uncertaintyJ: x.uncertaintyJ,
      shortWindow: x.shortWindow,
      powerIntegration: x.powerIntegration,
      counterReset: x.counterReset,
      extrapolated: x.extrapolated,
      wrapsInferred: x.wrapsInferred ?? 0,
    });
    r.totalEnergyJ += x.energyJ;
  }
  return r;
}
