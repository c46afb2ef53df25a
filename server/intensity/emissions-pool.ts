/**
 * Worker threads for ComputeEmissions, so that the largest requests the service accepts (MAX_SEGMENTS
 * segments, a few MiB each, about a second of CPU) never block its event loop: an unrelated cached
 * GetCurrentIntensity stays fast while they run (bench/intensity-responsiveness.ts). The main thread only
 * hands the request's bytes over, fetches the history for the span the worker found, and hands the series
 * back; the segments stay in the worker that decoded them (no copy of 100,000 objects across threads).
 *
 * Workers start on first use, are unref'd (they never keep the process alive) and are replaced when one
 * dies; its jobs fail with INTERNAL. Each worker does one task at a time; the others wait on this thread,
 * where a caller that leaves (deadline, cancellation) takes its task back before any of its work is done.
 * A new request goes to an idle worker, else a new one (up to the pool's size), else the least busy.
 */
import { availableParallelism } from "node:os";
import type { Worker } from "node:worker_threads";
import { startWorker } from "../shared/worker.js";
import { AppError, Code } from "../shared/errors.js";
import { upstreamContext } from "../shared/net/upstream-context.js";
import type { RangeMs } from "./core/series.js";
import { computeJob, decodeEmissions, type EmissionsRequestFields, type EmissionsSeries } from "./emissions-job.js";
import type { WorkerAnswer, WorkerRequest } from "./emissions-worker.js";

/** Requests up to this size (about 3,000 segments, a few ms of work) are not worth a worker's crossing. */
export const INLINE_MAX_BYTES = 128 * 1024;

/** One worker per core left after the main thread's, at least one, at most four. */
export const DEFAULT_EMISSIONS_WORKERS = Math.max(1, Math.min(4, availableParallelism() - 1));

interface Task {
  msg: WorkerRequest;
  transfer: ArrayBuffer[];
  resolve: (value: unknown) => void;
  reject: (err: AppError) => void;
  /** The caller's signal: a task still queued when it fires is dropped, its work never done. */
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** One worker, one task at a time; the rest wait here, where a caller that leaves can take theirs back. */
class PoolWorker {
  readonly worker: Worker;
  readonly queue: Task[] = [];
  running: Task | undefined;
  dead = false;

  constructor(onExit: (w: PoolWorker) => void) {
    this.worker = startWorker(import.meta.url, "emissions-worker");
    this.worker.unref();
    this.worker.on("message", (a: WorkerAnswer) => {
      const task = this.running;
      if (!task || task.msg.id !== a.id) return;
      this.running = undefined;
      settle(task);
      if (a.ok) task.resolve(a.value);
      else task.reject(new AppError(a.error.code as Code, a.error.message, a.error.hint ? { hint: a.error.hint } : {}));
      this.pump();
    });
    const fail = (why: string): void => {
      if (this.dead) return;
      this.dead = true;
      for (const task of [...(this.running ? [this.running] : []), ...this.queue.splice(0)]) {
        settle(task);
        task.reject(new AppError(Code.Internal, `the emissions worker stopped: ${why}`));
      }
      this.running = undefined;
      onExit(this);
    };
    this.worker.on("error", (err) => fail(err.message));
    this.worker.on("exit", (code) => fail(`exit code ${code}`));
  }

  /** Tasks queued or running (how busy it is). */
  get load(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  /** Queues a task (first: ahead of the others, for a cheap one that must not wait behind large ones). */
  add(task: Task, first = false): void {
    if (this.dead) return task.reject(new AppError(Code.Internal, "the emissions worker stopped"));
    const { signal } = task;
    if (signal?.aborted) return task.reject(AppError.from(signal.reason));
    if (signal) {
      task.onAbort = () => {
        const i = this.queue.indexOf(task);
        if (i < 0) return; // running: it ends on its own (at most about a second)
        this.queue.splice(i, 1);
        task.reject(AppError.from(signal.reason));
      };
      signal.addEventListener("abort", task.onAbort, { once: true });
    }
    if (first) this.queue.unshift(task);
    else this.queue.push(task);
    this.pump();
  }

  private pump(): void {
    if (this.running || this.dead) return;
    const task = this.queue.shift();
    if (!task) return;
    this.running = task;
    this.worker.postMessage(task.msg, task.transfer);
  }
}

function settle(task: Task): void {
  if (task.onAbort) task.signal?.removeEventListener("abort", task.onAbort);
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
   * agent's small request never queues behind the largest ones); a larger one in a worker. A caller whose
   * signal (its upstream context's: deadline, cancellation) fires while its work is still queued gets its
   * reason, and the work is never done.
   */
  async open(bytes: Uint8Array): Promise<EmissionsJob> {
    if (bytes.length <= INLINE_MAX_BYTES) return inlineJob(bytes);
    const signal = upstreamContext.getStore()?.signal;
    const w = this.pick();
    const job = this.nextId++;
    // A copy of exactly the message, moved (not cloned) to the worker: the received Buffer may be a view
    // of a larger one.
    const copy = new Uint8Array(bytes);
    const decoded = (await this.send(
      w,
      { type: "decode", id: this.nextId++, job, bytes: copy },
      { transfer: [copy.buffer], signal },
    )) as Omit<EmissionsJob, "compute" | "drop">;
    let done = false;
    return {
      ...decoded,
      compute: (series) => {
        done = true;
        return this.send(w, { type: "compute", id: this.nextId++, job, series }, { signal }).catch((err: unknown) => {
          // Never computed (the caller left while it was queued): its segments are let go all the same.
          if (signal?.aborted) this.send(w, { type: "drop", id: this.nextId++, job }, { first: true }).catch(() => undefined);
          throw err;
        }) as Promise<Uint8Array>;
      },
      drop: () => {
        if (done || w.dead) return;
        done = true;
        this.send(w, { type: "drop", id: this.nextId++, job }, { first: true }).catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.splice(0).map((w) => w.worker.terminate()));
  }

  private pick(): PoolWorker {
    if (this.closed) throw new AppError(Code.Unavailable, "the service is shutting down");
    const idle = this.workers.find((w) => w.load === 0);
    if (idle) return idle;
    if (this.workers.length < this.size) {
      const w = new PoolWorker((dead) => {
        const i = this.workers.indexOf(dead);
        if (i >= 0) this.workers.splice(i, 1);
      });
      this.workers.push(w);
      return w;
    }
    return this.workers.reduce((a, b) => (b.load < a.load ? b : a));
  }

  private send(
    w: PoolWorker,
    msg: WorkerRequest,
    options: { transfer?: ArrayBuffer[]; signal?: AbortSignal | undefined; first?: boolean } = {},
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      w.add(
        { msg, transfer: options.transfer ?? [], resolve, reject, ...(options.signal ? { signal: options.signal } : {}) },
        options.first,
      );
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
