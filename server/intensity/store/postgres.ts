/**
 * The store in PostgreSQL (CARBONMON_DATABASE_URL=postgres://…), shared by every replica of the
 * intensity service. Each shared operation is one statement, so replicas never interleave inside one:
 * the points upsert, the lease take (which succeeds only on a free or lapsed lease), the budget take
 * (a row-locked UPDATE that re-checks the tokens it takes).
 */
import pg from "pg";
import { AppError, Code } from "../../shared/errors.js";
import type { Logger } from "../../shared/log.js";
import type { EmissionFactor, Point } from "../core/point.js";
import { POSTGRES_MIGRATIONS } from "./migrations.js";
import { kept, refilled, toPoint, toRow, type PointRow } from "./rows.js";
import type { Budget, IntensityStore, SharedAnswer } from "./store.js";

/** pg_advisory_lock key of the migrations ("carbon" in ASCII): one replica migrates, the others wait. */
const MIGRATION_LOCK = 0x636172626f6e;

// One statement for a whole batch. Rows with the same key in one batch would make ON CONFLICT fail
// ("cannot affect row a second time"): the batch is reduced to one row per key first.
const UPSERT = `
INSERT INTO points (provider, zone, emission_factor, valid_from_ms, valid_to_ms, g_per_kwh, is_estimated,
  estimation_method, signal, source, fetched_at_ms, source_updated_at_ms)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::float8[], $7::smallint[],
  $8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[])
ON CONFLICT (provider, zone, emission_factor, valid_from_ms) DO UPDATE SET
  valid_to_ms = excluded.valid_to_ms, g_per_kwh = excluded.g_per_kwh, is_estimated = excluded.is_estimated,
  estimation_method = excluded.estimation_method, source = excluded.source, fetched_at_ms = excluded.fetched_at_ms,
  source_updated_at_ms = excluded.source_updated_at_ms
WHERE points.is_estimated = 1 OR excluded.is_estimated = 0`;

const TAKE_TOKEN = `
UPDATE budgets SET tokens = LEAST($2, tokens + GREATEST(0, $4 - refilled_at_ms)::float8 / $3 * $2) - 1,
  refilled_at_ms = GREATEST(refilled_at_ms, $4)
WHERE provider = $1 AND LEAST($2, tokens + GREATEST(0, $4 - refilled_at_ms)::float8 / $3 * $2) >= 1
RETURNING tokens`;

/** One row per key, a measured value winning over an estimate, else the later one. */
function onePerKey(points: readonly Point[]): Point[] {
  const byKey = new Map<string, Point>();
  for (const p of points) {
    const key = `${p.provider}\0${p.zone}\0${p.emissionFactor}\0${p.validFromMs}`;
    const prev = byKey.get(key);
    if (!prev || !p.isEstimated || prev.isEstimated) byKey.set(key, p);
  }
  return [...byKey.values()];
}

/**
 * Times are BIGINT milliseconds; the service's monotonic clock has fractions. Rounded here: a period's
 * bounds are whole already, a fetch time loses under a millisecond.
 */
function wholeMs(r: PointRow): PointRow {
  return {
    ...r,
    valid_from_ms: Math.round(r.valid_from_ms),
    valid_to_ms: Math.round(r.valid_to_ms),
    fetched_at_ms: Math.round(r.fetched_at_ms),
    source_updated_at_ms: r.source_updated_at_ms === null ? null : Math.round(r.source_updated_at_ms),
  };
}

export interface PostgresStoreOptions {
  /** Connections per replica (default 10). */
  maxConnections?: number;
}

export class PostgresStore implements IntensityStore {
  readonly kind = "postgres";
  private readonly seeded = new Set<string>();

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects, applies missing migrations under the advisory lock, and returns the store. */
  static async open(url: string, log: Logger, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10, connectionTimeoutMillis: 10_000 });
    // An idle client losing its server (a restart, a failover) must not crash the process: the pool
    // drops it and connects anew on the next query.
    pool.on("error", (err) => log.warn({ err: err.message }, "PostgreSQL connection lost"));
    try {
      await migrate(pool, log);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw new AppError(Code.FailedPrecondition, `cannot open the PostgreSQL store: ${(err as Error).message}`, {
        hint: "check CARBONMON_DATABASE_URL (postgres://user:password@host:5432/database) and that the user may create tables",
        cause: err,
      });
    }
    return new PostgresStore(pool);
  }

  async save(points: readonly Point[]): Promise<void> {
    const rows = onePerKey(kept(points)).map(toRow).map(wholeMs);
    if (rows.length === 0) return;
    const col = <K extends keyof PointRow>(k: K) => rows.map((r) => r[k]);
    await this.pool.query(UPSERT, [
      col("provider"),
      col("zone"),
      col("emission_factor"),
      col("valid_from_ms"),
      col("valid_to_ms"),
      col("g_per_kwh"),
      col("is_estimated"),
      col("estimation_method"),
      col("signal"),
      col("source"),
      col("fetched_at_ms"),
      col("source_updated_at_ms"),
    ]);
  }

  async range(provider: string, zone: string, emissionFactor: EmissionFactor, fromMs: number, toMs: number): Promise<Point[]> {
    const r = await this.pool.query<PointRow>(
      `SELECT * FROM points WHERE provider = $1 AND zone = $2 AND emission_factor = $3 AND valid_to_ms > $4 AND valid_from_ms < $5 ORDER BY valid_from_ms`,
      [provider, zone, emissionFactor, Math.floor(fromMs), Math.ceil(toMs)],
    );
    return r.rows.map(toPoint);
  }

  async readAnswer(key: string, nowMs: number): Promise<SharedAnswer | undefined> {
    const r = await this.pool.query<{ json: string; expires_at_ms: string }>(
      `SELECT json, expires_at_ms FROM answers WHERE key = $1 AND expires_at_ms > $2`,
      [key, Math.floor(nowMs)],
    );
    const row = r.rows[0];
    return row ? { json: row.json, expiresAtMs: Number(row.expires_at_ms) } : undefined;
  }

  async writeAnswer(key: string, answer: SharedAnswer): Promise<void> {
    await this.pool.query(
      `INSERT INTO answers (key, json, expires_at_ms) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET json = excluded.json, expires_at_ms = excluded.expires_at_ms`,
      [key, answer.json, Math.round(answer.expiresAtMs)],
    );
  }

  async pruneAnswers(nowMs: number): Promise<void> {
    await this.pool.query(`DELETE FROM answers WHERE expires_at_ms <= $1`, [Math.round(nowMs)]);
  }

  async tryLease(key: string, owner: string, leaseMs: number): Promise<boolean> {
    const r = await this.pool.query(
      `INSERT INTO leases (key, owner, expires_at) VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
       ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
       WHERE leases.expires_at <= clock_timestamp() OR leases.owner = excluded.owner
       RETURNING owner`,
      [key, owner, leaseMs],
    );
    return r.rowCount === 1;
  }

  async renewLease(key: string, owner: string, leaseMs: number): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE leases SET expires_at = clock_timestamp() + $3 * interval '1 millisecond' WHERE key = $1 AND owner = $2`,
      [key, owner, leaseMs],
    );
    return r.rowCount === 1;
  }

  async releaseLease(key: string, owner: string): Promise<void> {
    await this.pool.query(`DELETE FROM leases WHERE key = $1 AND owner = $2`, [key, owner]);
  }

  async takeToken(provider: string, budget: Budget, nowMs: number): Promise<number | undefined> {
    await this.seed(provider, budget, nowMs);
    const r = await this.pool.query<{ tokens: number }>(TAKE_TOKEN, [provider, budget.capacity, budget.windowMs, Math.round(nowMs)]);
    return r.rows[0] ? Number(r.rows[0].tokens) : undefined;
  }

  async tokens(provider: string, budget: Budget, nowMs: number): Promise<number> {
    await this.seed(provider, budget, nowMs);
    const r = await this.pool.query<{ tokens: number; refilled_at_ms: string }>(
      `SELECT tokens, refilled_at_ms FROM budgets WHERE provider = $1`,
      [provider],
    );
    const row = r.rows[0]!;
    return refilled(Number(row.tokens), Number(row.refilled_at_ms), nowMs, budget.capacity, budget.windowMs);
  }

  /** A full bucket on first use (once per process; the insert is a no-op when a replica made it). */
  private async seed(provider: string, budget: Budget, nowMs: number): Promise<void> {
    if (this.seeded.has(provider)) return;
    await this.pool.query(`INSERT INTO budgets (provider, tokens, refilled_at_ms) VALUES ($1, $2, $3) ON CONFLICT (provider) DO NOTHING`, [
      provider,
      budget.capacity,
      Math.round(nowMs),
    ]);
    this.seeded.add(provider);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** Applies the migrations this database lacks, each in its own transaction, holding the advisory lock. */
async function migrate(pool: pg.Pool, log: Logger): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query(`SELECT pg_advisory_lock($1)`, [MIGRATION_LOCK.toString()]);
    try {
      await client.query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
      );
      const done = new Set((await client.query<{ version: number }>(`SELECT version FROM schema_migrations`)).rows.map((r) => r.version));
      for (const m of POSTGRES_MIGRATIONS.filter((m) => !done.has(m.version))) {
        await client.query("BEGIN");
        try {
          await client.query(m.sql);
          await client.query(`INSERT INTO schema_migrations (version, description) VALUES ($1, $2)`, [m.version, m.description]);
          await client.query("COMMIT");
        } catch (err) {
          await client.query("ROLLBACK");
          throw err;
        }
        log.info({ version: m.version, description: m.description }, "PostgreSQL store migrated");
      }
    } finally {
      await client.query(`SELECT pg_advisory_unlock($1)`, [MIGRATION_LOCK.toString()]);
    }
  } finally {
    client.release();
  }
}
