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

export type DeviceConfig = Pick<AgentConfig, "nvmlLibrary" | "powercapRoot" | "samplingPeriodMs" | "raplMaxPowerW">;

export async function probeSources(config: DeviceConfig, clock?: Clock): Promise<EnergySource[]> {
  return Promise.all([
    NvmlSource.probe({ libraryPath: config.nvmlLibrary, samplingPeriodMs: config.samplingPeriodMs, clockShift: clock && shiftBufferOf(clock) }),
    RaplSource.probe({ root: config.powercapRoot, maxPowerW: config.raplMaxPowerW, samplingPeriodMs: config.samplingPeriodMs, ...(clock ? { clock } : {}) }),
  ]).then((sources) => withSimulatedGpu(sources, config, clock));
}
