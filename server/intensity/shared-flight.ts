/**
 * Single flight across replicas that share a store. For a key missing from its own cache, a replica:
 *   1. reads the answer another replica stored under the key (fresh: done, no upstream call);
 *   2. else takes the key's lease; the holder asks upstream, stores the answer, releases the lease, and
 *      renews the lease while upstream is slow, so a lease only lapses when its holder died;
 *   3. else waits for the answer, polling the store (every replica checks at most every 100 ms), and takes
 *      the lease itself if the holder's lapses (it died) or released it without an answer (it failed).
 * The wait is bounded (maxWaitMs): past it, the replica asks upstream itself rather than fail the caller.
 * It also ends when the flight's signal fires (every local caller waiting on it has gone: TtlCache), with
 * that signal's reason; a waiting replica never stays on for callers it no longer has.
 * Failures and answers not to be kept are not shared: the holder releases the lease and the next replica
 * asks itself.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Clock } from "../shared/clock.js";
import { AppError } from "../shared/errors.js";
import { upstreamContext } from "../shared/net/upstream-context.js";
import type { Logger } from "../shared/log.js";
import type { IntensityStore } from "./store/store.js";

export interface SharedFlightOptions {
  /** How long a lease lasts unless renewed (renewed every third of it); default 3 s. */
  leaseMs?: number;
  /** The longest a replica waits for another's answer before asking upstream itself; default 30 s. */
  maxWaitMs?: number;
}

export interface Loaded<T> {
  value: T;
  /** 0 or in the past: not to be cached. */
  expiresAtMs: number;
  /** Whether this process asked upstream (false: another replica's answer). */
  fetched: boolean;
}

const FIRST_POLL_MS = 5;
const MAX_POLL_MS = 100;
const PRUNE_EVERY = 200;

export class SharedFlight {
  /** This replica's name on leases. */
  readonly owner = `${process.pid}-${randomUUID()}`;
  private readonly leaseMs: number;
  private readonly maxWaitMs: number;
  private writes = 0;

  constructor(
    private readonly store: IntensityStore,
    private readonly clock: Clock,
    private readonly log: Logger,
    options: SharedFlightOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? 3_000;
    this.maxWaitMs = options.maxWaitMs ?? 30_000;
  }

  async load<T>(key: string, load: () => Promise<T>, ttlMs: (value: T) => number): Promise<Loaded<T>> {
    const giveUpAt = performance.now() + this.maxWaitMs;
    let pollMs = FIRST_POLL_MS;
    for (;;) {
      let leader = false;
      try {
        const answer = await this.store.readAnswer(key, this.clock.nowMs());
        if (answer) return { value: JSON.parse(answer.json) as T, expiresAtMs: answer.expiresAtMs, fetched: false };
        leader = await this.store.tryLease(key, this.owner, this.leaseMs);
      } catch (err) {
        // The store is unreachable: answer the caller anyway (upstream budgets are this replica's guess).
        this.log.warn({ key, err: (err as Error).message }, "shared store unreachable: asking upstream directly");
        return this.alone(load, ttlMs);
      }
      if (leader) {
        // The previous holder may have stored its answer and let go between our read and our take.
        const stored = await this.store.readAnswer(key, this.clock.nowMs()).catch(() => undefined);
        if (stored) {
          await this.store.releaseLease(key, this.owner).catch(() => undefined);
          return { value: JSON.parse(stored.json) as T, expiresAtMs: stored.expiresAtMs, fetched: false };
        }
        return this.lead(key, load, ttlMs);
      }
      if (performance.now() >= giveUpAt) {
        this.log.warn({ key, waitedMs: this.maxWaitMs }, "no answer from the replica holding the lease: asking upstream directly");
        return this.alone(load, ttlMs);
      }
      const signal = upstreamContext.getStore()?.signal;
      if (signal?.aborted) throw AppError.from(signal.reason);
      await sleep(pollMs, undefined, signal ? { signal } : {}).catch((err: unknown) => {
        throw signal?.aborted ? AppError.from(signal.reason) : err;
      });
      pollMs = Math.min(MAX_POLL_MS, pollMs * 2);
    }
  }

  private async alone<T>(load: () => Promise<T>, ttlMs: (value: T) => number): Promise<Loaded<T>> {
    const value = await load();
    const ttl = ttlMs(value);
    return { value, expiresAtMs: ttl > 0 ? this.clock.nowMs() + ttl : 0, fetched: true };
  }

  /** Holding the lease: ask upstream, publish the answer, let go. */
  private async lead<T>(key: string, load: () => Promise<T>, ttlMs: (value: T) => number): Promise<Loaded<T>> {
    const renew = setInterval(() => {
      this.store.renewLease(key, this.owner, this.leaseMs).then(
        (held) => held || this.log.warn({ key }, "lease lost while asking upstream (the store was unreachable for longer than the lease)"),
        (err: unknown) => this.log.warn({ key, err: (err as Error).message }, "lease renewal failed"),
      );
    }, this.leaseMs / 3);
    try {
      const value = await load();
      const now = this.clock.nowMs();
      const ttl = ttlMs(value);
      const expiresAtMs = ttl > 0 ? now + ttl : 0;
      try {
        // An answer not to be kept (ttl 0) is not shared either: waiters find the lease released and ask.
        if (ttl > 0) await this.store.writeAnswer(key, { json: JSON.stringify(value), expiresAtMs });
        if (++this.writes % PRUNE_EVERY === 0) await this.store.pruneAnswers(now);
      } catch (err) {
        // The caller still gets the answer; other replicas ask upstream once the lease is released.
        this.log.warn({ key, err: (err as Error).message }, "could not share an answer");
      }
      return { value, expiresAtMs, fetched: true };
    } finally {
      clearInterval(renew);
      await this.store
        .releaseLease(key, this.owner)
        .catch((err: unknown) => this.log.warn({ key, err: (err as Error).message }, "lease release failed"));
    }
  }
}
