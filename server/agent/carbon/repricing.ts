/**
 * The whole policy for asking the intensity service again, in one place. A window is priced when it ends
 * (within CARBONMON_CARBON_TIMEOUT_MS); grams that are pending (the service could not answer) or
 * provisional (a forecast, an estimate or a filled gap) are asked for again in the background, after
 * CARBONMON_CARBON_RETRY_MS, then after a doubling delay: at most 5 minutes apart while pending (the
 * grams are missing), at most an hour apart while provisional (they are there, and may still be revised).
 * Final grams are never asked for again. Pending grams never overwrite provisional ones.
 */
import type { CarbonState } from "./outcome.js";

/** Windows whose grams are asked for again per round of the background loop. */
export const REPRICE_BATCH = 50;
export const MAX_PENDING_RETRY_MS = 5 * 60_000;
export const MAX_PROVISIONAL_RETRY_MS = 3600_000;
/** The background loop runs every retryMs, at least once a minute. */
export const roundEveryMs = (retryMs: number): number => Math.min(retryMs, 60_000);

/** When an ended window's grams are first asked for again: undefined when it has nothing to price. */
export function firstRetryAtMs(nowMs: number, retryMs: number, hasPieces: boolean): number | null {
  return hasPieces ? nowMs + retryMs : null;
}

/** When to ask again after the tries-th attempt gave `status`: null once final. */
export function nextRetryAtMs(status: Exclude<CarbonState, "disabled">, tries: number, nowMs: number, retryMs: number): number | null {
  if (status === "final") return null;
  const maxMs = status === "pending" ? MAX_PENDING_RETRY_MS : MAX_PROVISIONAL_RETRY_MS;
  return nowMs + Math.min(retryMs * 2 ** Math.min(tries, 30), maxMs);
}
