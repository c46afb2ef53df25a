/**
 * Answers kept until they can change, and one upstream call for any number of identical concurrent
 * requests (single flight). Keys are opaque strings built by the caller; values carry their own expiry.
 */
import type { Clock } from "../shared/clock.js";

interface Entry<T> {
  value: T;
  expiresAtMs: number;
}

export class TtlCache {
  private readonly entries = new Map<string, Entry<unknown>>();
  private readonly inFlight = new Map<string, Promise<unknown>>();
  /** Upstream loads started (for ListProviders and tests). */
  loads = 0;
  /** Lookups by result (metrics): answered from the cache, loaded, or joined a load in flight. */
  readonly lookups = { hit: 0, miss: 0, coalesced: 0 };

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = 10_000,
  ) {}

  /**
   * The cached value, or the result of load() shared with every concurrent caller of the same key.
   * ttlMs(value) says how long the value stays valid; 0 means do not keep it.
   */
  async get<T>(key: string, load: () => Promise<T>, ttlMs: (value: T) => number): Promise<{ value: T; cached: boolean }> {
    const hit = this.entries.get(key);
    if (hit && hit.expiresAtMs > this.clock.nowMs()) {
      this.lookups.hit++;
      return { value: hit.value as T, cached: true };
    }
    const pending = this.inFlight.get(key);
    if (pending) {
      this.lookups.coalesced++;
      return { value: (await pending) as T, cached: false };
    }
    this.lookups.miss++;
    this.loads++;
    const promise = load();
    this.inFlight.set(key, promise);
    try {
      const value = await promise;
      const ttl = ttlMs(value);
      if (ttl > 0) this.set(key, value, ttl);
      return { value, cached: false };
    } finally {
      this.inFlight.delete(key);
    }
  }

  /** Whether any answer is still valid (health: the service can answer something without upstream). */
  hasFresh(): boolean {
    const now = this.clock.nowMs();
    for (const e of this.entries.values()) if (e.expiresAtMs > now) return true;
    return false;
  }

  private set(key: string, value: unknown, ttlMs: number): void {
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAtMs: this.clock.nowMs() + ttlMs });
  }
}
