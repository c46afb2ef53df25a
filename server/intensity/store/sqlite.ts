/**
 * The store in one SQLite file (CARBONMON_DATA_DIR/intensity.db): the default for one replica. The
 * shared-state tables work here too (several processes on one file take the same leases), so the service
 * runs the same code on both stores.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { AppError, Code } from "../../shared/errors.js";
import type { EmissionFactor, Point } from "../core/point.js";
import { SQLITE_MIGRATIONS } from "./migrations.js";
import { kept, POINT_COLUMNS, refilled, toPoint, toRow, type PointRow } from "./rows.js";
import type { Budget, IntensityStore, SharedAnswer } from "./store.js";

const UPSERT = `
INSERT INTO points (${POINT_COLUMNS.join(", ")}) VALUES (${POINT_COLUMNS.map((c) => `@${c}`).join(", ")})
ON CONFLICT (provider, zone, emission_factor, valid_from_ms) DO UPDATE SET
  valid_to_ms = excluded.valid_to_ms, g_per_kwh = excluded.g_per_kwh, is_estimated = excluded.is_estimated,
  estimation_method = excluded.estimation_method, source = excluded.source, fetched_at_ms = excluded.fetched_at_ms,
  source_updated_at_ms = excluded.source_updated_at_ms
WHERE points.is_estimated = 1 OR excluded.is_estimated = 0`;

export class SqliteStore implements IntensityStore {
  readonly kind = "sqlite";
  private readonly db: Database.Database;
  private readonly stmt;

  constructor(dataDir: string) {
    try {
      mkdirSync(dataDir, { recursive: true });
      this.db = new Database(join(dataDir, "intensity.db"));
    } catch (err) {
      throw new AppError(Code.FailedPrecondition, `cannot open the intensity database in ${dataDir}: ${(err as Error).message}`, {
        hint: "set CARBONMON_DATA_DIR to a writable directory",
      });
    }
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    this.migrate();
    const db = this.db;
    this.stmt = {
      upsert: db.prepare(UPSERT),
      range: db.prepare(
        `SELECT * FROM points WHERE provider = ? AND zone = ? AND emission_factor = ? AND valid_to_ms > ? AND valid_from_ms < ? ORDER BY valid_from_ms`,
      ),
      readAnswer: db.prepare(`SELECT json, expires_at_ms AS expiresAtMs FROM answers WHERE key = ? AND expires_at_ms > ?`),
      writeAnswer: db.prepare(
        `INSERT INTO answers (key, json, expires_at_ms) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET json = excluded.json, expires_at_ms = excluded.expires_at_ms`,
      ),
      pruneAnswers: db.prepare(`DELETE FROM answers WHERE expires_at_ms <= ?`),
      tryLease: db.prepare(
        `INSERT INTO leases (key, owner, expires_at_ms) VALUES (@key, @owner, @until) ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at_ms = excluded.expires_at_ms WHERE leases.expires_at_ms <= @now OR leases.owner = excluded.owner RETURNING owner`,
      ),
      renewLease: db.prepare(`UPDATE leases SET expires_at_ms = @until WHERE key = @key AND owner = @owner RETURNING owner`),
      releaseLease: db.prepare(`DELETE FROM leases WHERE key = ? AND owner = ?`),
      seedBudget: db.prepare(`INSERT INTO budgets (provider, tokens, refilled_at_ms) VALUES (?, ?, ?) ON CONFLICT (provider) DO NOTHING`),
      budget: db.prepare(`SELECT tokens, refilled_at_ms AS refilledAtMs FROM budgets WHERE provider = ?`),
      setBudget: db.prepare(`UPDATE budgets SET tokens = ?, refilled_at_ms = ? WHERE provider = ?`),
    };
  }

  /** Applies the missing migrations in one write transaction (which also serialises processes). */
  private migrate(): void {
    this.db
      .transaction(() => {
        const current = this.db.pragma("user_version", { simple: true }) as number;
        for (const m of SQLITE_MIGRATIONS.filter((m) => m.version > current)) {
          this.db.exec(m.sql);
          this.db.pragma(`user_version = ${m.version}`);
        }
      })
      .immediate();
  }

  async save(points: readonly Point[]): Promise<void> {
    const rows = kept(points).map(toRow);
    if (rows.length === 0) return;
    this.db.transaction(() => {
      for (const row of rows) this.stmt.upsert.run(row);
    })();
  }

  async range(provider: string, zone: string, emissionFactor: EmissionFactor, fromMs: number, toMs: number): Promise<Point[]> {
    return (this.stmt.range.all(provider, zone, emissionFactor, fromMs, toMs) as PointRow[]).map(toPoint);
  }

  async readAnswer(key: string, nowMs: number): Promise<SharedAnswer | undefined> {
    return this.stmt.readAnswer.get(key, nowMs) as SharedAnswer | undefined;
  }

  async writeAnswer(key: string, answer: SharedAnswer): Promise<void> {
    this.stmt.writeAnswer.run(key, answer.json, answer.expiresAtMs);
  }

  async pruneAnswers(nowMs: number): Promise<void> {
    this.stmt.pruneAnswers.run(nowMs);
  }

  async tryLease(key: string, owner: string, leaseMs: number): Promise<boolean> {
    const now = Date.now();
    return this.stmt.tryLease.get({ key, owner, until: now + leaseMs, now }) !== undefined;
  }

  async renewLease(key: string, owner: string, leaseMs: number): Promise<boolean> {
    return this.stmt.renewLease.get({ key, owner, until: Date.now() + leaseMs }) !== undefined;
  }

  async releaseLease(key: string, owner: string): Promise<void> {
    this.stmt.releaseLease.run(key, owner);
  }

  async takeToken(provider: string, budget: Budget, nowMs: number): Promise<number | undefined> {
    // One transaction: read, refill, take, write (better-sqlite3 is synchronous; the file lock covers
    // other processes).
    return this.db
      .transaction(() => {
        const { left, atMs } = this.refill(provider, budget, nowMs);
        if (left < 1) return undefined;
        this.stmt.setBudget.run(left - 1, atMs, provider);
        return left - 1;
      })
      .immediate();
  }

  async tokens(provider: string, budget: Budget, nowMs: number): Promise<number> {
    return this.refill(provider, budget, nowMs).left;
  }

  /** Tokens at nowMs, and the refill time to record (never moved back by a replica whose clock is behind). */
  private refill(provider: string, budget: Budget, nowMs: number): { left: number; atMs: number } {
    this.stmt.seedBudget.run(provider, budget.capacity, nowMs);
    const row = this.stmt.budget.get(provider) as { tokens: number; refilledAtMs: number };
    return {
      left: refilled(row.tokens, row.refilledAtMs, nowMs, budget.capacity, budget.windowMs),
      atMs: Math.max(row.refilledAtMs, nowMs),
    };
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
