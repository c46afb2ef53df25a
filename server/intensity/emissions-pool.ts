/**
 * Worker threads for ComputeEmissions, so that the largest requests the service accepts (MAX_SEGMENTS
 * segments, a few MiB each, about a second of CPU) never block its event loop: an unrelated cached
 * GetCurrentIntensity stays fast while they run (bench/intensity-responsiveness.ts). The main thread only
 * hands the request's bytes over, fetches the history for the span the worker found, and hands the series
 * back; the segments stay in the worker that decoded them (no copy of 100,000 objects across threads).
 *
 * Workers start on first use, are unref'd (they never keep the process alive) and are replaced when one
 * dies; its jobs fail with INTERNAL. Jobs queue in the workers' message ports; a worker takes the job
 * with the fewest outstanding messages.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { AppError, Code } from "../shared/errors.js";
import type { RangeMs } from "./core/series.js";
import { computeJob, decodeEmissions, type EmissionsRequestFields, type EmissionsSeries } from "./emissions-job.js";
import type { WorkerAnswer, WorkerRequest } from "./emissions-worker.js";

const FROM_SOURCE = import.meta.url.endsWith(".ts");
const WORKER_URL = new URL(FROM_SOURCE ? "./emissions-worker.ts" : "./emissions-worker.js", import.meta.url);

/** Requests up to this size (about 3,000 segments, a few ms of work) are not worth a worker's crossing. */
export const INLINE_MAX_BYTES = 128 * 1024;

/** One worker per core left after the main thread's, at least one, at most four. */
export const DEFAULT_EMISSIONS_WORKERS = Math.max(1, Math.min(4, availableParallelism() - 1));

/** Running the TypeScript sources (tests, benchmarks): the worker loads tsx first (same as the NVML worker). */
function tsxBootstrap(url: URL): string {
  const api = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  return `import(${api}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`;
}

type Pending = { resolve: (value: unknown) => void; reject: (err: AppError) => void };

class PoolWorker {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  dead = false;

  constructor(onExit: (w: PoolWorker) => void) {
    this.worker = FROM_SOURCE ? new Worker(tsxBootstrap(WORKER_URL), { eval: true }) : new Worker(WORKER_URL);
    this.worker.unref();
    this.worker.on("message", (a: WorkerAnswer) => {
      const p = this.pending.get(a.id);
      if (!p) return;
      this.pending.delete(a.id);
      if (a.ok) p.resolve(a.value);
      else p.reject(new AppError(a.error.code as Code, a.error.message, a.error.hint ? { hint: a.error.hint } : {}));
    });
    const fail = (why: string): void => {
      if (this.dead) return;
      this.dead = true;
      for (const p of this.pending.values()) p.reject(new AppError(Code.Internal, `the emissions worker stopped: ${why}`));
      this.pending.clear();
      onExit(this);
    };
    this.worker.on("error", (err) => fail(err.message));
    this.worker.on("exit", (code) => fail(`exit code ${code}`));
  }
}

/** A decoded request whose segments wait in one worker. */
export interface EmissionsJob {
  fields: EmissionsRequestFields;
  span: RangeMs;
  count: number;
  /** The encoded ComputeEmissionsResponse against the series; the job is done after it (its segments let go). */
  compute(series: EmissionsSeries): Promise<Uint8Array>;
  /** Lets go of the segments without computing (the history fetch failed). */
  drop(): void;
}

export class EmissionsPool {
  private readonly workers: PoolWorker[] = [];
  private nextId = 1;
  private closed = false;

  constructor(private readonly size = DEFAULT_EMISSIONS_WORKERS) {}

  /**
   * Decodes and checks the request: INVALID_ARGUMENT for a request over a limit or a bad segment. One of
   * at most INLINE_MAX_BYTES is handled on this thread (a few ms: cheaper than the crossing, and an
   * agent's small request never queues behind the largest ones); a larger one in a worker.
   */
  async open(bytes: Uint8Array): Promise<EmissionsJob> {
    if (bytes.length <= INLINE_MAX_BYTES) return inlineJob(bytes);
    const w = this.pick();
    const job = this.nextId++;
    // A copy of exactly the message, moved (not cloned) to the worker: the received Buffer may be a view
    // of a larger one.
    const copy = new Uint8Array(bytes);
    const decoded = (await this.send(w, { type: "decode", id: this.nextId++, job, bytes: copy }, [copy.buffer])) as Omit<
      EmissionsJob,
      "compute" | "drop"
    >;
    let done = false;
    return {
      ...decoded,
      compute: (series) => {
        done = true;
        return this.send(w, { type: "compute", id: this.nextId++, job, series }) as Promise<Uint8Array>;
      },
      drop: () => {
        if (done || w.dead) return;
        done = true;
        this.send(w, { type: "drop", id: this.nextId++, job }).catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.splice(0).map((w) => w.worker.terminate()));
  }

  private pick(): PoolWorker {
    if (this.closed) throw new AppError(Code.Unavailable, "the service is shutting down");
    if (this.workers.length < this.size) {
      const w = new PoolWorker((dead) => {
        const i = this.workers.indexOf(dead);
        if (i >= 0) this.workers.splice(i, 1);
      });
      this.workers.push(w);
      return w;
    }
    return this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private send(w: PoolWorker, msg: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (w.dead) return Promise.reject(new AppError(Code.Internal, "the emissions worker stopped"));
    return new Promise((resolve, reject) => {
      w.pending.set(msg.id, { resolve, reject });
      w.worker.postMessage(msg, transfer);
    });
  }
}

/** The same job on this thread, for a small request. */
function inlineJob(bytes: Uint8Array): EmissionsJob {
  const { fields, span, segments } = decodeEmissions(bytes);
  return {
    fields,
    span,
    count: segments.length,
    compute: async (series) => computeJob(segments, series),
    drop: () => undefined,
  };
}
