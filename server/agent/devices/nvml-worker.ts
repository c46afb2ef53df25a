/**
 * The NVML worker thread: all NVML calls happen here, because an energy read blocks for ~4 ms (serialised
 * inside NVML) and would stall the agent's event loop. It probes the GPUs once (nvml-probe.ts), then runs a
 * ReadLoop (nvml-reader.ts: the schedule and the stamping) and posts its readings. Messages: in
 * {type:"stop"}, {type:"active"}; out {type:"probe"}, {type:"readings"}, {type:"stopped"}.
 */
import { parentPort, workerData } from "node:worker_threads";
import { ShiftedClock, systemClock } from "../../shared/clock.js";
import type { BackendState, Device, Reading } from "./energy-source.js";
import { probe } from "./nvml-probe.js";
import { ReadLoop } from "./nvml-reader.js";

export interface NvmlWorkerData {
  libraryPath: string;
  periodMs: number;
  /** The period while idle (no window or stream open), ≥ periodMs; the worker starts idle. */
  idlePeriodMs: number;
  /** The agent clock's shift (ShiftedClock), so that readings are stamped on the agent's time base. */
  clockShift?: SharedArrayBuffer | undefined;
}

export type NvmlWorkerMessage =
  | { type: "probe"; state: BackendState; devices: Device[] }
  | { type: "readings"; readings: Reading[]; energyReads: number; readMs: number[] }
  | { type: "stopped" };

/** Main thread to worker: stop, or switch between full-rate (active) and idle-rate sampling. */
export type NvmlControlMessage = { type: "stop" } | { type: "active"; active: boolean };

function post(message: NvmlWorkerMessage): void {
  parentPort!.postMessage(message);
}

function run(data: NvmlWorkerData): void {
  const { nvml, state, plans, devices } = probe(data);
  post({ type: "probe", state, devices });
  const clock = data.clockShift ? new ShiftedClock(data.clockShift) : systemClock;
  const onReadings = (readings: Reading[], energyReads: number, readMs: number[]) =>
    post({ type: "readings", readings, energyReads, readMs });
  const loop =
    nvml && plans.length > 0
      ? new ReadLoop(nvml, plans, { samplingPeriodMs: data.periodMs, idlePeriodMs: data.idlePeriodMs, clock, onReadings })
      : undefined;
  loop?.start();
  parentPort!.on("message", (msg: NvmlControlMessage) => {
    if (msg.type === "active") loop?.setActive(msg.active);
    if (msg.type !== "stop") return;
    loop?.stop();
    nvml?.shutdown();
    post({ type: "stopped" });
    parentPort!.close();
  });
}

run(workerData as NvmlWorkerData);
