/**
 * What stands between the service and one upstream provider: a request budget (a token bucket sized from
 * the provider's published limits, so that a fleet never triggers 429s) and a circuit breaker (after
 * repeated failures the provider is not asked for a while; then one trial call decides).
 */
import type { Clock } from "../shared/clock.js";
import { AppError, Code } from "../shared/errors.js";

export interface Budget {
  /** Requests allowed in one window. */
  capacity: number;
  windowMs: number;
}

/** Failures that say the provider is unwell (not that the question was bad). */
const UNHEALTHY = new Set<string>([Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted, Code.Internal]);
const OPEN_AFTER_FAILURES = 5;
const OPEN_FOR_MS = 30_000;

export type Health = "healthy" | "degraded" | "circuit_open";

export class ProviderGuard {
  private tokens: number;
  private refilledAtMs: number;
  private consecutiveFailures = 0;
  private openUntilMs = 0;
  lastSuccessMs: number | undefined;
  lastError: string | undefined;

  constructor(
    readonly name: string,
    readonly budget: Budget | undefined,
    private readonly clock: Clock,
  ) {
    this.tokens = budget?.capacity ?? Infinity;
    this.refilledAtMs = clock.nowMs();
  }

  /** Tokens left now (Infinity without a budget). */
  remaining(): number {
    if (!this.budget) return Infinity;
    const now = this.clock.nowMs();
    const refill = ((now - this.refilledAtMs) / this.budget.windowMs) * this.budget.capacity;
    this.tokens = Math.min(this.budget.capacity, this.tokens + refill);
    this.refilledAtMs = now;
    return this.tokens;
  }

  health(): Health {
    if (this.openUntilMs > this.clock.nowMs()) return "circuit_open";
    return this.consecutiveFailures > 0 ? "degraded" : "healthy";
  }

  /** Runs one upstream call under the budget and the breaker. */
  async run<T>(call: () => Promise<T>): Promise<T> {
    const now = this.clock.nowMs();
    if (this.openUntilMs > now) {
      throw new AppError(Code.Unavailable, `${this.name} is not asked for ${Math.ceil((this.openUntilMs - now) / 1000)} s after ${this.consecutiveFailures} failures in a row (${this.lastError ?? "unknown"})`);
    }
    if (this.remaining() < 1) {
      throw new AppError(Code.ResourceExhausted, `${this.name}'s request budget (${this.budget!.capacity} per ${this.budget!.windowMs / 1000} s) is spent`, {
        hint: "answers come from the cache and the store meanwhile; try again shortly",
      });
    }
    this.tokens -= 1;
    try {
      const value = await call();
      this.consecutiveFailures = 0;
      this.lastSuccessMs = this.clock.nowMs();
      return value;
    } catch (err) {
      const e = AppError.from(err);
      if (UNHEALTHY.has(e.code)) this.failed(e.message);
      throw err;
    }
  }

  private failed(message: string): void {
    this.lastError = message;
    this.consecutiveFailures++;
    // Half-open: after the pause one call goes through; failing again re-opens at once.
    if (this.consecutiveFailures >= OPEN_AFTER_FAILURES) this.openUntilMs = this.clock.nowMs() + OPEN_FOR_MS;
  }
}
