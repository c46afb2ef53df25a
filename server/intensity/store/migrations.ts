/**
 * Schema versions of both stores. A migration is applied once, in order, and never edited after release:
 * a change is a new version. SQLite records the version in `user_version`; PostgreSQL in
 * `schema_migrations`, applied under an advisory lock by whichever replica gets it first.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "points",
    // IF NOT EXISTS: databases from before versioning have this table at user_version 0.
    sql: `
CREATE TABLE IF NOT EXISTS points (
  provider TEXT NOT NULL,
  zone TEXT NOT NULL,
  emission_factor TEXT NOT NULL,
  valid_from_ms INTEGER NOT NULL,
  valid_to_ms INTEGER NOT NULL,
  g_per_kwh REAL NOT NULL,
  is_estimated INTEGER NOT NULL,
  estimation_method TEXT,
  signal TEXT NOT NULL,
  source TEXT NOT NULL,
  fetched_at_ms INTEGER NOT NULL,
  source_updated_at_ms INTEGER,
  PRIMARY KEY (provider, zone, emission_factor, valid_from_ms)
);`,
  },
  {
    version: 2,
    description: "shared answers, leases and budgets",
    sql: `
CREATE TABLE answers (key TEXT PRIMARY KEY, json TEXT NOT NULL, expires_at_ms INTEGER NOT NULL);
CREATE TABLE leases (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at_ms INTEGER NOT NULL);
CREATE TABLE budgets (provider TEXT PRIMARY KEY, tokens REAL NOT NULL, refilled_at_ms INTEGER NOT NULL);`,
  },
];

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "points",
    sql: `
CREATE TABLE points (
  provider TEXT NOT NULL,
  zone TEXT NOT NULL,
  emission_factor TEXT NOT NULL,
  valid_from_ms BIGINT NOT NULL,
  valid_to_ms BIGINT NOT NULL,
  g_per_kwh DOUBLE PRECISION NOT NULL,
  is_estimated SMALLINT NOT NULL,
  estimation_method TEXT,
  signal TEXT NOT NULL,
  source TEXT NOT NULL,
  fetched_at_ms BIGINT NOT NULL,
  source_updated_at_ms BIGINT,
  PRIMARY KEY (provider, zone, emission_factor, valid_from_ms)
);`,
  },
  {
    version: 2,
    description: "shared answers, leases and budgets",
    // Leases expire on the database's clock (one clock for all replicas); answers on the service clock.
    sql: `
CREATE TABLE answers (key TEXT PRIMARY KEY, json TEXT NOT NULL, expires_at_ms BIGINT NOT NULL);
CREATE TABLE leases (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
CREATE TABLE budgets (provider TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, refilled_at_ms BIGINT NOT NULL);`,
  },
];
