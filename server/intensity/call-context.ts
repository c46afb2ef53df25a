/**
 * A gRPC call's deadline and cancellation carried into every upstream request it causes (see
 * shared/net/upstream-context.ts). Upstream requests are cut before the deadline (a quarter of the time
 * left, at most 1 s) so that the fallback chain can still answer from a local provider and the answer
 * reach the caller, even with a busy event loop.
 */
import type { ServerUnaryCall } from "@grpc/grpc-js";
import { AppError, Code } from "../shared/errors.js";
import { withUpstream } from "../shared/net/upstream-context.js";

const MAX_RESERVE_MS = 1000;

export async function withCall<T>(call: ServerUnaryCall<unknown, unknown>, fn: () => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onCancel = (): void => controller.abort(new AppError(Code.Cancelled, "the caller cancelled the request"));
  call.on("cancelled", onCancel);
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  let timer: NodeJS.Timeout | undefined;
  let upstreamDeadlineMs: number | undefined;
  if (Number.isFinite(deadlineMs)) {
    const leftMs = deadlineMs - Date.now();
    upstreamDeadlineMs = deadlineMs - Math.min(MAX_RESERVE_MS, Math.max(leftMs, 0) / 4);
    const abort = (): void => controller.abort(new AppError(Code.DeadlineExceeded, "stopped at the caller's deadline"));
    if (upstreamDeadlineMs <= Date.now()) abort();
    else timer = setTimeout(abort, upstreamDeadlineMs - Date.now());
  }
  if (call.cancelled) onCancel();
  try {
    return await withUpstream(
      { signal: controller.signal, ...(upstreamDeadlineMs !== undefined ? { deadlineMs: upstreamDeadlineMs } : {}) },
      fn,
    );
  } finally {
    clearTimeout(timer);
    call.removeListener("cancelled", onCancel);
  }
}
