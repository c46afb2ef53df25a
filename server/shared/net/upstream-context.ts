/**
 * What a caller lends every upstream request made on its behalf, without each provider passing it on:
 * the gRPC call's cancellation and deadline, and a charge per request (the provider's budget). Set with
 * upstreamContext.run() around a handler (callContext) and around a guarded provider call (guard.ts);
 * read by the HTTP client (http.ts) before each request.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export interface UpstreamContext {
  /** Aborted when the caller goes away or its deadline is near; its reason is the AppError to answer. */
  signal?: AbortSignal;
  /** Epoch ms after which no upstream request or retry wait should still be running. */
  deadlineMs?: number;
  /** Called before every upstream request, retries included; throws to refuse it (a spent budget). */
  beforeRequest?: () => Promise<void>;
}

export const upstreamContext = new AsyncLocalStorage<UpstreamContext>();

/** The context now, extended with `more` for `fn`. */
export function withUpstream<T>(more: UpstreamContext, fn: () => T): T {
  return upstreamContext.run({ ...upstreamContext.getStore(), ...more }, fn);
}
