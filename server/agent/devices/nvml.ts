/**
 * The NVML backend as the agent's main thread sees it: a worker thread (nvml-worker.ts) owns the library
 * and its slow reads; this side only receives the probe result and the readings.
 */
import { existsSync } from "node:fs";
import { isAbsolute } from "node:path";
import type { Worker } from "node:worker_threads";
import { startWorker } from "../../shared/worker.js";
import type { BackendState, Device, EnergySource, ReadingSink } from "./energy-source.js";
import { NO_LIBRARY_HINT } from "./nvml-errors.js";
import type { NvmlControlMessage, NvmlWorkerData, NvmlWorkerMessage } from "./nvml-worker.js";

export interface NvmlOptions {
  libraryPath: string;
  samplingPeriodMs: number;
  /** The period while idle (no window or stream open; the source starts idle); default: samplingPeriodMs. */
  idlePeriodMs?: number;
  /** How long the probe may take before the backend is reported unavailable. */
  probeTimeoutMs?: number;
  /** The agent clock's shared shift (ShiftedClock.buffer); unset: the system clock. */
  clockShift?: SharedArrayBuffer | undefined;
}

/** Running from TypeScript sources (tsx): the worker needs the same loader. */

export class NvmlSource implements EnergySource {
  readonly name = "nvml";
  /** Energy-counter reads performed by the worker so far. */
  energyReads = 0;
  /** Told how long each NVML read took, ms (metrics); the worker measures them around its calls. */
  onReadDurations: ((readMs: readonly number[]) => void) | undefined;
  private sink: ReadingSink | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly worker: Worker | undefined,
    private backendState: BackendState,
    private readonly found: Device[],
  ) {
    worker?.on("message", (msg: NvmlWorkerMessage) => this.onMessage(msg));
  }

  /** Starts the worker and waits for its probe. Never throws: problems become an unavailable state. */
  static async probe(options: NvmlOptions): Promise<NvmlSource> {
    // A library path that names no file needs no worker to say so (a worker thread costs ~0.1 s of CPU to start).
    if (isAbsolute(options.libraryPath) && !existsSync(options.libraryPath)) {
      const reason = `cannot load ${options.libraryPath}: no such file`;
      return new NvmlSource(undefined, { name: "nvml", status: "unavailable", reason, hint: NO_LIBRARY_HINT }, []);
    }
    const workerData: NvmlWorkerData = {
      libraryPath: options.libraryPath,
      periodMs: options.samplingPeriodMs,
      idlePeriodMs: Math.max(options.samplingPeriodMs, options.idlePeriodMs ?? options.samplingPeriodMs),
      clockShift: options.clockShift,
    };
    const worker = startWorker(import.meta.url, "nvml-worker", { workerData });
    try {
      const probe = await firstProbe(worker, options.probeTimeoutMs ?? 15_000);
      if (probe.devices.length === 0) {
        await worker.terminate();
        return new NvmlSource(undefined, probe.state, []);
      }
      return new NvmlSource(worker, probe.state, probe.devices);
    } catch (err) {
      await worker.terminate();
      const reason = `NVML probe failed: ${(err as Error).message}`;
      return new NvmlSource(undefined, { name: "nvml", status: "unavailable", reason }, []);
    }
  }

  state(): BackendState {
    return this.backendState;
  }

  devices(): readonly Device[] {
    return this.found;
  }

  start(sink: ReadingSink): void {
    this.sink = sink;
  }

  /** Tells the worker; going active, it reads every GPU at once (see nvml-worker.ts). */
  setActive(active: boolean): void {
    if (this.stopping) return;
    this.worker?.postMessage({ type: "active", active } satisfies NvmlControlMessage);
  }

  private onMessage(msg: NvmlWorkerMessage): void {
    if (msg.type !== "readings") return;
    this.energyReads = msg.energyReads;
    if (msg.readMs.length > 0) this.onReadDurations?.(msg.readMs);
    // A failure reading (a GPU lost) reaches the sampler, the one writer of a device's status after probing.
    if (msg.readings.length > 0) this.sink?.(msg.readings);
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdownWorker();
    return this.stopping;
  }

  private async shutdownWorker(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.sink = undefined;
    const stopped = new Promise<void>((resolve) => {
      worker.on("message", (msg: NvmlWorkerMessage) => msg.type === "stopped" && resolve());
      worker.once("exit", () => resolve());
    });
    worker.postMessage({ type: "stop" } satisfies NvmlControlMessage);
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref());
    await Promise.race([stopped, timeout]);
    await worker.terminate();
  }
}

function firstProbe(worker: Worker, timeoutMs: number): Promise<Extract<NvmlWorkerMessage, { type: "probe" }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    worker.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    worker.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with code ${code}`));
    });
    worker.on("message", (msg: NvmlWorkerMessage) => {
      if (msg.type !== "probe") return;
      clearTimeout(timer);
      resolve(msg);
    });
  });
}
