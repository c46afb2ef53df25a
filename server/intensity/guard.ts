/**
 * What stands between the service and one upstream provider: a request budget (a token bucket sized from
 * the provider's published limits, so that a fleet never triggers 429s) and a circuit breaker (after
 * repeated failures the provider is not asked for a while; then one trial call decides).
 *
 * The budget is the provider's, not this process's: with a ledger (the store, shared by every replica)
 * the bucket lives in the database and replicas take from the same tokens. The breaker stays per replica
 * (each sees its own failures; a shared one would let one replica's network trouble stop the others).
 */
import type { Clock } from "../shared/clock.js";
import { AppError, Code } from "../shared/errors.js";
import type { Budget } from "./store/store.js";
import { withUpstream } from "../shared/net/upstream-context.js";

export type { Budget };

/** Where the tokens live when they are shared (IntensityStore implements it). */
export interface BudgetLedger {
  takeToken(provider: string, budget: Budget, nowMs: number): Promise<number | undefined>;
  tokens(provider: string, budget: Budget, nowMs: number): Promise<number>;
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
    private readonly ledger?: BudgetLedger,
  ) {
    this.tokens = budget?.capacity ?? Infinity;
    this.refilledAtMs = clock.nowMs();
  }

  /** Tokens left now (Infinity without a budget), from the ledger when there is one. */
  async budgetRemaining(): Promise<number> {
    if (!this.budget || !this.ledger) return this.remaining();
    return this.ledger.tokens(this.name, this.budget, this.clock.nowMs());
  }

  /** Tokens left now in this process's own bucket (Infinity without a budget). */
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

  /**
   * Runs one provider call under the budget and the breaker. The budget counts upstream requests, not
   * calls: the first token is taken here, and every further HTTP request the call makes (a range in
   * chunks, a retry, a login) takes one more through the upstream context, or is refused when none is left.
   */
  async run<T>(call: () => Promise<T>): Promise<T> {
    const now = this.clock.nowMs();
    if (this.openUntilMs > now) {
      throw new AppError(
        Code.Unavailable,
        `${this.name} is not asked for ${Math.ceil((this.openUntilMs - now) / 1000)} s after ${this.consecutiveFailures} failures in a row (${this.lastError ?? "unknown"})`,
      );
    }
    if (!(await this.take())) throw this.spent();
    let prepaid = true;
    const beforeRequest = async (): Promise<void> => {
      if (prepaid) prepaid = false;
      else if (!(await this.take())) throw this.spent();
    };
    try {
      const value = await withUpstream({ beforeRequest }, call);
      this.consecutiveFailures = 0;
      this.lastSuccessMs = this.clock.nowMs();
      return value;
    } catch (err) {
      const e = AppError.from(err);
      if (UNHEALTHY.has(e.code)) this.failed(e.message);
      throw err;
    }
  }

  private spent(): AppError {
    return new AppError(
      Code.ResourceExhausted,
      `${this.name}'s request budget (${this.budget!.capacity} per ${this.budget!.windowMs / 1000} s) is spent`,
      {
        hint: "answers come from the cache and the store meanwhile; try again shortly",
      },
    );
  }

  /** Takes one token; false when none is left. */
  private async take(): Promise<boolean> {
    if (!this.budget) return true;
    if (this.ledger) return (await this.ledger.takeToken(this.name, this.budget, this.clock.nowMs())) !== undefined;
    if (this.remaining() < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private failed(message: string): void {
    this.lastError = message;
    this.consecutiveFailures++;
    // Half-open: after the pause one call goes through; failing again re-opens at once.
    if (this.consecutiveFailures >= OPEN_AFTER_FAILURES) this.openUntilMs = this.clock.nowMs() + OPEN_FOR_MS;
  }
}
