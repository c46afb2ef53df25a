/**
 * Answers kept until they can change, and one upstream call for any number of identical concurrent
 * requests (single flight). Keys are opaque strings built by the caller; values carry their own expiry.
 *
 * With a shared flight (every replica on one store), single flight spans the replicas: a miss here first
 * reads the answer another replica stored, and only the replica holding the key's lease asks upstream.
 */
import type { Clock } from "../shared/clock.js";
import type { Loaded, SharedFlight } from "./shared-flight.js";

interface Entry<T> {
  value: T;
  expiresAtMs: number;
}

export class TtlCache {
  private readonly entries = new Map<string, Entry<unknown>>();
  private readonly inFlight = new Map<string, Promise<Loaded<unknown>>>();
  /** Upstream loads started by this process (for ListProviders and tests). */
  loads = 0;
  /** Lookups by result (metrics): answered from the cache, loaded, or joined a load in flight. */
  readonly lookups = { hit: 0, miss: 0, coalesced: 0 };

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = 10_000,
    private readonly shared?: SharedFlight,
  ) {}

  /**
   * The cached value, or the result of load() shared with every concurrent caller of the same key.
   * ttlMs(value) says how long the value stays valid; 0 means do not keep it. With a shared flight the
   * value must survive JSON (plain data).
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
      return { value: (await pending).value as T, cached: false };
    }
    this.lookups.miss++;
    const promise = this.load(key, load, ttlMs);
    this.inFlight.set(key, promise);
    try {
      const loaded = await promise;
      if (loaded.expiresAtMs > this.clock.nowMs()) this.set(key, loaded.value, loaded.expiresAtMs);
      return { value: loaded.value, cached: !loaded.fetched };
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

  private async load<T>(key: string, load: () => Promise<T>, ttlMs: (value: T) => number): Promise<Loaded<T>> {
    const counted = async (): Promise<T> => {
      this.loads++;
      return load();
    };
    if (this.shared) return this.shared.load(key, counted, ttlMs);
    const value = await counted();
    const ttl = ttlMs(value);
    return { value, expiresAtMs: ttl > 0 ? this.clock.nowMs() + ttl : 0, fetched: true };
  }

  private set(key: string, value: unknown, expiresAtMs: number): void {
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAtMs });
  }
}
