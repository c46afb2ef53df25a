/**
 * What the intensity service keeps, behind one interface with two implementations: SQLite in the data
 * directory (one replica, the default) and PostgreSQL (CARBONMON_DATABASE_URL; any number of replicas).
 *
 * Besides the history of points it holds the state replicas must share to behave as one service: answers
 * with their expiry, leases that make one replica the only one to ask upstream for a key, and the
 * providers' request budgets. Every method is async: PostgreSQL is, and SQLite's synchronous calls cost
 * nothing to wrap.
 */
import type { EmissionFactor, Point } from "../core/point.js";

/** A token bucket: `capacity` requests per `windowMs`, refilled continuously. */
export interface Budget {
  capacity: number;
  windowMs: number;
}

/** An answer one replica fetched, for the others to read until it expires (the service clock's ms). */
export interface SharedAnswer {
  json: string;
  expiresAtMs: number;
}

export interface IntensityStore {
  /** "sqlite" or "postgres", for logs. */
  readonly kind: string;

  /**
   * Keeps points (forecasts are dropped: only what happened answers history). One atomic upsert per
   * point: a measured value replaces an estimate, an estimate never replaces a measured value.
   */
  save(points: readonly Point[]): Promise<void>;
  /** Points of one provider's series overlapping [fromMs, toMs), oldest first. */
  range(provider: string, zone: string, emissionFactor: EmissionFactor, fromMs: number, toMs: number): Promise<Point[]>;

  /** The answer stored under key if it has not expired at nowMs. */
  readAnswer(key: string, nowMs: number): Promise<SharedAnswer | undefined>;
  writeAnswer(key: string, answer: SharedAnswer): Promise<void>;
  /**
   * Takes the lease on key for leaseMs (the store's own wall clock) unless another owner holds an
   * unexpired one; true when `owner` holds it now. A holder that dies stops renewing: its lease lapses.
   */
  tryLease(key: string, owner: string, leaseMs: number): Promise<boolean>;
  /** Extends a lease still held by owner; false when it was lost (lapsed and taken). */
  renewLease(key: string, owner: string, leaseMs: number): Promise<boolean>;
  releaseLease(key: string, owner: string): Promise<void>;

  /**
   * Takes one token from the provider's bucket at nowMs (created full on first use): the tokens left
   * after taking it, or undefined when fewer than one was left (nothing taken).
   */
  takeToken(provider: string, budget: Budget, nowMs: number): Promise<number | undefined>;
  /** Tokens left at nowMs, without taking one. */
  tokens(provider: string, budget: Budget, nowMs: number): Promise<number>;

  /** Drops answers that expired before nowMs (housekeeping). */
  pruneAnswers(nowMs: number): Promise<void>;
  close(): Promise<void>;
}
