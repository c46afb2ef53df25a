/**
 * Probes every backend once at start-up. Each backend is one file behind EnergySource; adding one is one
 * line here. Absent hardware gives a source with no devices and a reason, never an exception.
 */
import { shiftBufferOf, type Clock } from "../../shared/clock.js";
import type { AgentConfig } from "../../shared/config.js";
import type { EnergySource } from "./energy-source.js";
import { NvmlSource } from "./nvml.js";
import { RaplSource } from "./rapl.js";
import { withSimulatedGpu } from "./simulated.js";

export type DeviceConfig = Pick<
  AgentConfig,
  "nvmlLibrary" | "powercapRoot" | "samplingPeriodMs" | "idleSamplingPeriodMs" | "raplMaxPowerW" | "simulatedGpu"
>;

/** The sources start idle (idleSamplingPeriodMs); the sampler switches them as windows and streams come and go. */
export async function probeSources(config: DeviceConfig, clock?: Clock): Promise<EnergySource[]> {
  const periods = { samplingPeriodMs: config.samplingPeriodMs, idlePeriodMs: config.idleSamplingPeriodMs };
  return Promise.all([
    NvmlSource.probe({ libraryPath: config.nvmlLibrary, ...periods, clockShift: clock && shiftBufferOf(clock) }),
    RaplSource.probe({ root: config.powercapRoot, maxPowerW: config.raplMaxPowerW, ...periods, ...(clock ? { clock } : {}) }),
  ]).then((sources) => withSimulatedGpu(sources, config, clock));
}
