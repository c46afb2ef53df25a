/**
 * Answers kept until they can change, and one upstream call for any number of identical concurrent
 * requests (single flight). Keys are opaque strings built by the caller; values carry their own expiry.
 *
 * Bounded twice: by entries and by an estimate of their bytes (size-estimate.ts), the least recently used
 * answer going first; an answer larger than the whole byte budget is served but not kept.
 *
 * Each caller waits on a flight within its own deadline and cancellation only (see Flight below): the load
 * runs in the flight's own upstream context, cancelled only once every caller waiting on it has gone.
 *
 * With a shared flight (every replica on one store), single flight spans the replicas: a miss here first
 * reads the answer another replica stored, and only the replica holding the key's lease asks upstream.
 */
import type { Clock } from "../shared/clock.js";
import { AppError, Code } from "../shared/errors.js";
import { upstreamContext, type UpstreamContext } from "../shared/net/upstream-context.js";
import type { Loaded, SharedFlight } from "./shared-flight.js";
import { estimateBytes } from "./size-estimate.js";

/** CARBONMON_INTENSITY_CACHE_MAX_BYTES's default: 64 MiB. */
export const DEFAULT_CACHE_MAX_BYTES = 64 * 1024 * 1024;

interface Entry<T> {
  value: T;
  expiresAtMs: number;
  bytes: number;
}

/** One caller waiting on a flight: its upstream deadline (undefined: none). */
interface Waiter {
  deadlineMs: number | undefined;
}

/**
 * A load in progress and who waits on it. The load's upstream requests see `controller.signal`, aborted
 * when the last waiter's own signal fires (never because the first one left), and the latest deadline of
 * the waiters still there (Retry-After waits are judged against it).
 */
interface Flight {
  promise: Promise<Loaded<unknown>>;
  controller: AbortController;
  waiters: Set<Waiter>;
}

export class TtlCache {
  /** In least- to most-recently-used order (a hit moves its entry to the end). */
  private readonly entries = new Map<string, Entry<unknown>>();
  private readonly inFlight = new Map<string, Flight>();
  /** Estimated bytes of every kept answer (metrics: carbonmon_intensity_cache_bytes). */
  private bytesKept = 0;
  /** Upstream loads started by this process (for ListProviders and tests). */
  loads = 0;
  /** Lookups by result (metrics): answered from the cache, loaded, or joined a load in flight. */
  readonly lookups = { hit: 0, miss: 0, coalesced: 0 };
  /** Answers not kept because alone they exceed the byte budget (metrics). */
  tooLarge = 0;

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = 10_000,
    private readonly shared?: SharedFlight,
    readonly maxBytes = DEFAULT_CACHE_MAX_BYTES,
  ) {}

  /** Estimated bytes of the answers kept now (≤ maxBytes). */
  get bytes(): number {
    return this.bytesKept;
  }

  /** How many answers are kept now. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The cached value, or the result of load() shared with every concurrent caller of the same key.
   * ttlMs(value) says how long the value stays valid; 0 means do not keep it. With a shared flight the
   * value must survive JSON (plain data).
   */
  async get<T>(key: string, load: () => Promise<T>, ttlMs: (value: T) => number): Promise<{ value: T; cached: boolean }> {
    const hit = this.entries.get(key);
    if (hit && hit.expiresAtMs > this.clock.nowMs()) {
      this.lookups.hit++;
      this.entries.delete(key);
      this.entries.set(key, hit);
      return { value: hit.value as T, cached: true };
    }
    const pending = this.inFlight.get(key);
    if (pending) {
      this.lookups.coalesced++;
      return { value: (await this.wait(key, pending)).value as T, cached: false };
    }
    this.lookups.miss++;
    const loaded = (await this.wait(key, this.start(key, load, ttlMs))) as Loaded<T>;
    return { value: loaded.value, cached: !loaded.fetched };
  }

  /** Whether any answer is still valid (health: the service can answer something without upstream). */
  hasFresh(): boolean {
    const now = this.clock.nowMs();
    for (const e of this.entries.values()) if (e.expiresAtMs > now) return true;
    return false;
  }

  /** Starts the load in a context of its own: the flight's signal, the waiters' latest deadline. */
  private start<T>(key: string, load: () => Promise<T>, ttlMs: (value: T) => number): Flight {
    const controller = new AbortController();
    const waiters = new Set<Waiter>();
    const context: UpstreamContext = { ...upstreamContext.getStore(), signal: controller.signal };
    Object.defineProperty(context, "deadlineMs", { enumerable: true, get: () => latestDeadline(waiters) });
    const flight: Flight = { controller, waiters, promise: undefined as unknown as Promise<Loaded<unknown>> };
    flight.promise = upstreamContext
      .run(context, () => this.load(key, load, ttlMs))
      .then((loaded) => {
        // Kept here, not by a caller: the caller that started the load may have left before it ended.
        if (loaded.expiresAtMs > this.clock.nowMs()) this.set(key, loaded.value, loaded.expiresAtMs);
        return loaded;
      })
      .finally(() => {
        if (this.inFlight.get(key) === flight) this.inFlight.delete(key);
      });
    this.inFlight.set(key, flight);
    return flight;
  }

  /**
   * Waits on a flight within this caller's own signal: when it fires, the caller leaves with its own
   * reason (DEADLINE_EXCEEDED, CANCELLED), and the others go on waiting. The last caller to leave cancels
   * the load instead and takes its outcome (the chain's fallback answer, quickly, or the cancellation).
   */
  private wait(key: string, flight: Flight): Promise<Loaded<unknown>> {
    const ctx = upstreamContext.getStore();
    const signal = ctx?.signal;
    const me: Waiter = { deadlineMs: ctx?.deadlineMs };
    flight.waiters.add(me);
    if (!signal) return flight.promise.finally(() => flight.waiters.delete(me));
    return new Promise<Loaded<unknown>>((resolve, reject) => {
      const leave = (): void => {
        flight.waiters.delete(me);
        if (flight.waiters.size > 0) return reject(AppError.from(signal.reason ?? new AppError(Code.Cancelled, "cancelled")));
        // Nobody is left to want its answer: new callers start afresh, and the upstream request stops.
        if (this.inFlight.get(key) === flight) this.inFlight.delete(key);
        flight.controller.abort(signal.reason);
      };
      if (signal.aborted) leave();
      else signal.addEventListener("abort", leave, { once: true });
      flight.promise.then(resolve, reject).finally(() => {
        signal.removeEventListener("abort", leave);
        flight.waiters.delete(me);
      });
    });
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
    this.remove(key);
    const bytes = estimateBytes(value) + key.length;
    if (bytes > this.maxBytes) {
      this.tooLarge++;
      return;
    }
    // Least recently used first: a Map iterates in insertion order and a hit re-inserts its entry.
    for (const oldest of this.entries.keys()) {
      if (this.entries.size < this.maxEntries && this.bytesKept + bytes <= this.maxBytes) break;
      this.remove(oldest);
    }
    this.entries.set(key, { value, expiresAtMs, bytes });
    this.bytesKept += bytes;
  }

  private remove(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.bytesKept -= e.bytes;
  }
}

/** The latest deadline among the waiters; undefined when one of them has none (or none is left). */
function latestDeadline(waiters: ReadonlySet<Waiter>): number | undefined {
  let latest = -Infinity;
  for (const w of waiters) {
    if (w.deadlineMs === undefined) return undefined;
    if (w.deadlineMs > latest) latest = w.deadlineMs;
  }
  return Number.isFinite(latest) ? latest : undefined;
}
