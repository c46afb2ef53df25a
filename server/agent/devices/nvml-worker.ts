/**
 * The NVML worker thread: all NVML calls happen here, because an energy read blocks for ~4 ms (serialised
 * inside NVML) and would stall the agent's event loop. It probes the GPUs once, then sweeps them once per
 * sampling period and posts the readings. Messages: in {type:"stop"}; out {type:"probe"}, {type:"readings"},
 * {type:"stopped"}.
 */
import { parentPort, workerData } from "node:worker_threads";
import { systemClock } from "../../shared/clock.js";
import { AppError } from "../../shared/errors.js";
import { mJToJ, mWToW } from "../../shared/units.js";
import type { BackendState, Device, Reading } from "./energy-source.js";
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
import { isLost, NVML_SUCCESS, nvmlError } from "./nvml-errors.js";

export interface NvmlWorkerData {
  libraryPath: string;
  periodMs: number;
}

export type NvmlWorkerMessage =
  | { type: "probe"; state: BackendState; devices: Device[] }
  | { type: "readings"; readings: Reading[]; energyReads: number }
  | { type: "stopped" };

/** How one GPU is read, decided once at probe time. */
interface GpuPlan {
  device: Device;
  handle: Handle;
  energy: "field" | "call" | "none";
  /** Instant power field request, or undefined: nvmlDeviceGetPowerUsage (1 s average). */
  power: FieldRequest | undefined;
  memoryPower: boolean;
}

const NO_LIBRARY_HINT = "install the NVIDIA driver or set CARBONMON_NVML_LIBRARY to the path of libnvidia-ml.so.1";

function post(message: NvmlWorkerMessage): void {
  parentPort!.postMessage(message);
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
    const device: Device = {
      id,
      domain: "gpu",
      index,
      name: nvml.name(handle),
      uuid: nvml.uuid(handle),
      powerLimitW: mWToW(nvml.powerLimitMw(handle)),
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

function probe(data: NvmlWorkerData): { nvml: Nvml | undefined; state: BackendState; plans: GpuPlan[]; devices: Device[] } {
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
    return { nvml: undefined, state: { name: "nvml", status: "unavailable", reason: e.message, ...(e.hint ? { hint: e.hint } : {}) }, plans: [], devices: [] };
  }
  const version = nvml.driverVersion();
  const planned = Array.from({ length: nvml.count() }, (_, i) => planGpu(nvml, i));
  const plans = planned.filter((p): p is GpuPlan => "handle" in p);
  const devices = planned.map((p) => ("handle" in p ? p.device : p));
  const state: BackendState = { name: "nvml", status: "ok", version };
  if (devices.length === 0) Object.assign(state, { status: "unavailable", reason: "NVML found no GPU" });
  return { nvml, state, plans, devices };
}

/**
 * Converts the driver's realtime µs stamps to the agent clock. Date.now() only has whole milliseconds, so
 * calibrate on the instant it ticks over (then it is exact), and again every minute to follow NTP slew.
 */
class RealtimeOffset {
  private offsetMs = 0;
  private calibratedAtMs = -Infinity;

  update(): void {
    const now = systemClock.nowMs();
    if (now - this.calibratedAtMs < 60_000) return;
    const start = Date.now();
    let tick = start;
    while (tick === start) tick = Date.now();
    this.calibratedAtMs = systemClock.nowMs();
    this.offsetMs = tick - this.calibratedAtMs;
  }

  toAgentMs(timestampUs: number, fallbackMs: number): number {
    const t = timestampUs / 1000 - this.offsetMs;
    return Math.abs(t - fallbackMs) < 2000 ? t : fallbackMs;
  }
}

class Sweeper {
  energyReads = 0;
  private readonly offset = new RealtimeOffset();

  constructor(
    private readonly nvml: Nvml,
    private readonly plans: GpuPlan[],
  ) {}

  sweep(): Reading[] {
    this.offset.update();
    const readings: Reading[] = [];
    for (const plan of this.plans) {
      if (plan.device.status !== "ok") continue;
      try {
        readings.push(this.readGpu(plan));
      } catch (err) {
        const reason = AppError.from(err).detail;
        plan.device.status = "lost";
        readings.push({ deviceId: plan.device.id, tMs: systemClock.nowMs(), failure: { status: "lost", reason } });
      }
    }
    return readings;
  }

  private readGpu(plan: GpuPlan): Reading {
    const { nvml, handle } = { nvml: this.nvml, handle: plan.handle };
    const requests: FieldRequest[] = [];
    if (plan.energy === "field") requests.push({ fieldId: FIELD_TOTAL_ENERGY, scopeId: SCOPE_GPU });
    if (plan.power) requests.push(plan.power);
    if (plan.memoryPower) requests.push({ fieldId: FIELD_POWER_AVERAGE, scopeId: SCOPE_MEMORY });
    const before = systemClock.nowMs();
    const { ret, results } = requests.length > 0 ? nvml.fieldValues(handle, requests) : { ret: NVML_SUCCESS, results: [] };
    this.fail("nvmlDeviceGetFieldValues", ret);
    const reading: Reading = { deviceId: plan.device.id, tMs: (before + systemClock.nowMs()) / 2 };
    let k = 0;
    if (plan.energy === "field") {
      const energy = results[k++]!;
      this.energyReads++;
      this.fail("field TOTAL_ENERGY_CONSUMPTION", energy.ret);
      reading.counterJ = mJToJ(energy.value);
      reading.tMs = this.offset.toAgentMs(energy.timestampUs, reading.tMs);
    } else if (plan.energy === "call") {
      const [r, mj] = nvml.totalEnergyMj(handle);
      this.energyReads++;
      this.fail("nvmlDeviceGetTotalEnergyConsumption", r);
      reading.counterJ = mJToJ(mj);
    }
    if (plan.power) {
      const p = results[k++]!;
      if (p.ret === NVML_SUCCESS) reading.powerW = mWToW(p.value);
      else this.fail("field POWER_INSTANT", p.ret);
    } else {
      const [r, mw] = nvml.powerUsageMw(handle);
      this.fail("nvmlDeviceGetPowerUsage", r);
      reading.powerW = mWToW(mw);
    }
    if (plan.memoryPower && results[k]!.ret === NVML_SUCCESS) reading.memoryPowerW = mWToW(results[k]!.value);
    const [tr, tempC] = nvml.temperatureC(handle);
    if (tr === NVML_SUCCESS) reading.temperatureC = tempC;
    return reading;
  }

  /** A lost GPU throws (the sweep marks it lost); other failures of one reading are tolerated. */
  private fail(call: string, ret: number): void {
    if (ret === NVML_SUCCESS) return;
    if (isLost(ret)) throw nvmlError(call, ret, this.nvml.errorString(ret));
  }
}

function run(data: NvmlWorkerData): void {
  const { nvml, state, plans, devices } = probe(data);
  post({ type: "probe", state, devices });
  let timer: NodeJS.Timeout | undefined;
  const sweeper = nvml && plans.length > 0 ? new Sweeper(nvml, plans) : undefined;
  const started = systemClock.nowMs();
  let tick = 0;
  const loop = (): void => {
    post({ type: "readings", readings: sweeper!.sweep(), energyReads: sweeper!.energyReads });
    const now = systemClock.nowMs();
    tick = Math.max(tick + 1, Math.ceil((now - started) / data.periodMs));
    timer = setTimeout(loop, Math.max(0, started + tick * data.periodMs - now));
  };
  if (sweeper) loop();
  parentPort!.on("message", (msg: { type: string }) => {
    if (msg.type !== "stop") return;
    clearTimeout(timer);
    nvml?.shutdown();
    post({ type: "stopped" });
    parentPort!.close();
  });
}

run(workerData as NvmlWorkerData);
