/** The client-side view of a window's result, with Zeus's names (zeus.monitor.energy.Measurement + carbon). */
import { CarbonStatus, type Measurement } from "../proto/gen/carbonmon/agent/v1/agent.js";

/** Per device index: joules or grams. */
export type PerDevice = Record<number, number>;

/**
 * Zeus's CarbonEmissionMeasurement: `time` in seconds, energies in joules and emissions in grams of CO2eq,
 * keyed by device index (GPU indices in the caller's CUDA_VISIBLE_DEVICES numbering). CPU and DRAM fields
 * are undefined when they were not measured; the carbon fields are undefined when the agent computed no
 * carbon (DISABLED, PENDING). Everything else (uncertainties, approximations, timestamps, labels) is on
 * `measurement`, the full generated message.
 */
export interface CarbonEmissionMeasurement {
  time: number;
  gpu_energy: PerDevice;
  gpu_carbon_emission: PerDevice | undefined;
  cpu_energy: PerDevice | undefined;
  cpu_carbon_emission: PerDevice | undefined;
  dram_energy: PerDevice | undefined;
  dram_carbon_emission: PerDevice | undefined;
  measurement: Measurement;
}

/** Carbon is reported when final or provisional; not when disabled, pending or unspecified. */
export function hasCarbon(m: Measurement): boolean {
  return m.carbonStatus === CarbonStatus.CARBON_STATUS_FINAL || m.carbonStatus === CarbonStatus.CARBON_STATUS_PROVISIONAL;
}

const isEmpty = (map: Record<number, number>): boolean => Object.keys(map).length === 0;
const copy = (map: Record<number, number>): PerDevice => ({ ...map });

export function toCarbonEmissionMeasurement(m: Measurement): CarbonEmissionMeasurement {
  const carbon = hasCarbon(m);
  const cpu = !isEmpty(m.cpuEnergyJ);
  const dram = !isEmpty(m.dramEnergyJ);
  return {
    time: m.timeS,
    gpu_energy: copy(m.gpuEnergyJ),
    gpu_carbon_emission: carbon ? copy(m.gpuCarbonG) : undefined,
    cpu_energy: cpu ? copy(m.cpuEnergyJ) : undefined,
    cpu_carbon_emission: carbon && cpu ? copy(m.cpuCarbonG) : undefined,
    dram_energy: dram ? copy(m.dramEnergyJ) : undefined,
    dram_carbon_emission: carbon && dram ? copy(m.dramCarbonG) : undefined,
    measurement: m,
  };
}

const sum = (map: PerDevice | undefined): number => (map ? Object.values(map).reduce((a, b) => a + b, 0) : 0);

/** Joules summed per domain and in total. */
export function energyTotals(m: CarbonEmissionMeasurement): { gpu: number; cpu: number; dram: number; total: number } {
  const gpu = sum(m.gpu_energy);
  const cpu = sum(m.cpu_energy);
  const dram = sum(m.dram_energy);
  return { gpu, cpu, dram, total: gpu + cpu + dram };
}
