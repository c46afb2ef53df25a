/**
 * The agent's Prometheus registry. Device figures are read from the sampler at scrape time (collect()
 * callbacks over its timelines and snapshots): a scrape never reads hardware, and costs the same with 0 or
 * 10,000 open windows. Window events (ended, their energy) and NVML read durations are counted as they
 * happen. Names follow Prometheus' rules (base units, _total counters) and dcgm-exporter's label habits.
 */
import { hostname } from "node:os";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { registerProcessMetrics } from "../../shared/metrics/defaults.js";
import { grpcMetrics, type GrpcMetrics } from "../../shared/metrics/grpc.js";
import type { Device } from "../devices/energy-source.js";
import { NvmlSource } from "../devices/nvml.js";
import type { Sampler } from "../energy/sampler.js";
import type { WindowResult } from "../windows/result.js";

/** What the collectors read at scrape time. */
export interface AgentMetricsSources {
  sampler: Sampler;
  openWindows: () => number;
  carbonPending: () => number;
}

export interface AgentMetrics {
  registry: Registry;
  grpc: GrpcMetrics;
  /** Counts an ended window (WindowManager's onEnded). */
  windowEnded(result: WindowResult): void;
}

/** NVML reads: ~4 ms when healthy (serialised in the driver), far longer when a GPU or the driver stalls. */
const NVML_READ_BUCKETS = [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1];

export function agentMetrics(sources: AgentMetricsSources): AgentMetrics {
  const registry = new Registry();
  registerProcessMetrics(registry);
  const host = hostname();
  const { sampler } = sources;
  const gpus = sampler.devices().filter((d) => d.domain === "gpu");
  const cpus = sampler.devices().filter((d) => d.domain === "cpu");
  const drams = sampler.devices().filter((d) => d.domain === "dram");
  const gpuLabels = (d: Device) => ({ gpu: String(d.index), uuid: d.uuid ?? "", model_name: d.name, hostname: host });
  const packageLabels = (d: Device) => ({ package: String(d.index), hostname: host });

  // Exported energies never go down: a value extrapolated past the latest reading may exceed what the
  // next reading shows, and a counter that decreased would read as a reset to Prometheus.
  const exportedJ = new Map<string, number>();
  const energyNow = (d: Device, nowMs: number): number | undefined => {
    const j = sampler.cumulativeEnergyJ(d.id, nowMs);
    if (j === undefined) return exportedJ.get(d.id);
    const out = Math.max(j, exportedJ.get(d.id) ?? 0);
    exportedJ.set(d.id, out);
    return out;
  };
  const energyCounter = (
    name: string,
    help: string,
    devices: readonly Device[],
    labels: (d: Device) => Record<string, string>,
    labelNames: string[],
  ) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        const now = sampler.now();
        for (const d of devices) {
          const j = energyNow(d, now);
          if (j !== undefined) this.inc(labels(d), j);
        }
      },
    });
  const gpuLabelNames = ["gpu", "uuid", "model_name", "hostname"];
  energyCounter(
    "carbonmon_gpu_energy_joules_total",
    "GPU energy since the agent started, joules (the sampler's timeline: monotonic across counter resets and wraps).",
    gpus,
    gpuLabels,
    gpuLabelNames,
  );
  energyCounter(
    "carbonmon_cpu_energy_joules_total",
    "CPU package energy (RAPL package zone) since the agent started, joules.",
    cpus,
    packageLabels,
    ["package", "hostname"],
  );
  energyCounter(
    "carbonmon_dram_energy_joules_total",
    "DRAM energy (RAPL dram zone) since the agent started, joules.",
    drams,
    packageLabels,
    ["package", "hostname"],
  );

  const snapshotGauge = (name: string, help: string, field: "powerW" | "temperatureC") =>
    new Gauge({
      name,
      help,
      labelNames: gpuLabelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const d of gpus) {
          const v = d.status === "ok" ? sampler.snapshot(d.id)?.[field] : undefined;
          if (v !== undefined) this.set(gpuLabels(d), v);
        }
      },
    });
  snapshotGauge("carbonmon_gpu_power_watts", "GPU power at the latest reading, watts.", "powerW");
  snapshotGauge("carbonmon_gpu_temperature_celsius", "GPU temperature at the latest reading, degrees Celsius.", "temperatureC");

  new Gauge({
    name: "carbonmon_device_up",
    help: "1 when the device can be read, 0 when it is unavailable or lost (the reason is in the log and in GetHost / `carbonmon host`).",
    labelNames: ["device", "hostname"],
    registers: [registry],
    collect() {
      this.reset();
      for (const d of sampler.devices()) this.set({ device: d.id, hostname: host }, d.status === "ok" ? 1 : 0);
    },
  });

  const nvmlRead = new Histogram({
    name: "carbonmon_nvml_read_duration_seconds",
    help: "Time one NVML read of one GPU took (energy, power, temperature fields), seconds.",
    buckets: NVML_READ_BUCKETS,
    registers: [registry],
  });
  for (const source of sampler.sources) {
    if (source instanceof NvmlSource) source.onReadDurations = (readMs) => readMs.forEach((ms) => nvmlRead.observe(ms / 1000));
  }

  new Gauge({
    name: "carbonmon_windows_open",
    help: "Windows open now.",
    registers: [registry],
    collect() {
      this.set(sources.openWindows());
    },
  });
  const ended = new Counter({
    name: "carbonmon_windows_ended_total",
    help: "Windows ended, by their carbon status when EndWindow answered (disabled, pending, provisional, final).",
    labelNames: ["carbon_status"],
    registers: [registry],
  });
  const endedByStatus = new Map(["disabled", "pending", "provisional", "final"].map((s) => [s, ended.labels(s)]));
  for (const child of endedByStatus.values()) child.inc(0); // every status is a series from the start
  const windowEnergy = new Counter({
    name: "carbonmon_window_energy_joules_total",
    help: "Energy measured in ended windows, by device kind (gpu, cpu, dram), joules.",
    labelNames: ["device_kind"],
    registers: [registry],
  });
  const energyByKind = new Map(["gpu", "cpu", "dram"].map((k) => [k, windowEnergy.labels(k)]));
  for (const child of energyByKind.values()) child.inc(0);
  new Gauge({
    name: "carbonmon_carbon_pending",
    help: "Ended windows whose grams are pending or provisional (asked for again in the background).",
    registers: [registry],
    collect() {
      this.set(sources.carbonPending());
    },
  });

  return {
    registry,
    grpc: grpcMetrics(registry),
    windowEnded(result) {
      endedByStatus.get(result.carbon.status)?.inc();
      for (const d of result.devices) if (d.energyJ > 0) energyByKind.get(d.domain)?.inc(d.energyJ);
    },
  };
}
