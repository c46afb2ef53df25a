/**
 * A worker thread of the ComputeEmissions pool (emissions-pool.ts): decodes and checks requests, keeps
 * their segments while the main thread fetches the history, then computes. One message in, one answer
 * out, by id; an AppError crosses as its code, message and hint.
 */
import { parentPort } from "node:worker_threads";
import { AppError } from "../shared/errors.js";
import type { EnergySegment } from "./core/emissions.js";
import { computeJob, decodeEmissions, type EmissionsSeries } from "./emissions-job.js";

export type WorkerRequest =
  | { type: "decode"; id: number; job: number; bytes: Uint8Array }
  | { type: "compute"; id: number; job: number; series: EmissionsSeries }
  | { type: "drop"; id: number; job: number };

export type WorkerAnswer =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { code: string; message: string; hint?: string } };

const jobs = new Map<number, EnergySegment[]>();
const port = parentPort!;

function handle(msg: WorkerRequest): unknown {
  switch (msg.type) {
    case "decode": {
      const { fields, segments, span } = decodeEmissions(msg.bytes);
      jobs.set(msg.job, segments);
      return { fields, span, count: segments.length };
    }
    case "compute": {
      const segments = jobs.get(msg.job);
      jobs.delete(msg.job);
      if (!segments) throw new Error(`no segments for job ${msg.job}`);
      return computeJob(segments, msg.series);
    }
    case "drop":
      jobs.delete(msg.job);
      return undefined;
  }
}

port.on("message", (msg: WorkerRequest) => {
  let answer: WorkerAnswer;
  try {
    answer = { id: msg.id, ok: true, value: handle(msg) };
  } catch (err) {
    const e = AppError.from(err);
    answer = { id: msg.id, ok: false, error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } };
  }
  port.postMessage(answer);
});
