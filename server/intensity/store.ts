/**
 * Every intensity point the service has fetched, with its provenance (CARBONMON_DATA_DIR/intensity.db).
 * A measured value replaces an estimate for the same period; an estimate never replaces a measurement.
 * Questions about periods upstream no longer serves (the free ElectricityMaps tier shows 24 h) are
 * answered from here.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { AppError, Code } from "../shared/errors.js";
import type { EmissionFactor, Point, Signal, Source } from "./core/point.js";

const SCHEMA = `
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
);
`;

interface Row {
  provider: string;
  zone: string;
  emission_factor: EmissionFactor;
  valid_from_ms: number;
  valid_to_ms: number;
  g_per_kwh: number;
  is_estimated: number;
  estimation_method: string | null;
  signal: Signal;
  source: Source;
  fetched_at_ms: number;
  source_updated_at_ms: number | null;
}

const toPoint = (r: Row): Point => ({
  zone: r.zone,
  gPerKwh: r.g_per_kwh,
  validFromMs: r.valid_from_ms,
  validToMs: r.valid_to_ms,
  isEstimated: r.is_estimated === 1,
  ...(r.estimation_method ? { estimationMethod: r.estimation_method } : {}),
  provider: r.provider,
  signal: r.signal,
  emissionFactor: r.emission_factor,
  source: r.source,
  fetchedAtMs: r.fetched_at_ms,
  ...(r.source_updated_at_ms !== null ? { sourceUpdatedAtMs: r.source_updated_at_ms } : {}),
});

export class IntensityStore {
  private readonly db: Database.Database;
  private readonly upsert;
  private readonly select;

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
    this.db.exec(SCHEMA);
    // Forecasts are not kept: only what happened (live, annual, configured) answers history.
    this.upsert = this.db.prepare(`
      INSERT INTO points VALUES (@provider, @zone, @emission_factor, @valid_from_ms, @valid_to_ms, @g_per_kwh, @is_estimated,
        @estimation_method, @signal, @source, @fetched_at_ms, @source_updated_at_ms)
      ON CONFLICT (provider, zone, emission_factor, valid_from_ms) DO UPDATE SET
        valid_to_ms = excluded.valid_to_ms, g_per_kwh = excluded.g_per_kwh, is_estimated = excluded.is_estimated,
        estimation_method = excluded.estimation_method, source = excluded.source, fetched_at_ms = excluded.fetched_at_ms,
        source_updated_at_ms = excluded.source_updated_at_ms
      WHERE points.is_estimated = 1 OR excluded.is_estimated = 0`);
    this.select = this.db.prepare(`
      SELECT * FROM points WHERE provider = ? AND zone = ? AND emission_factor = ? AND valid_to_ms > ? AND valid_from_ms < ?
      ORDER BY valid_from_ms`);
  }

  save(points: readonly Point[]): void {
    const rows = points.filter((p) => p.source !== "forecast");
    if (rows.length === 0) return;
    this.db.transaction(() => {
      for (const p of rows) {
        this.upsert.run({
          provider: p.provider,
          zone: p.zone,
          emission_factor: p.emissionFactor,
          valid_from_ms: p.validFromMs,
          valid_to_ms: p.validToMs,
          g_per_kwh: p.gPerKwh,
          is_estimated: p.isEstimated ? 1 : 0,
          estimation_method: p.estimationMethod ?? null,
          signal: p.signal,
          source: p.source,
          fetched_at_ms: p.fetchedAtMs,
          source_updated_at_ms: p.sourceUpdatedAtMs ?? null,
        });
      }
    })();
  }

  range(provider: string, zone: string, emissionFactor: EmissionFactor, fromMs: number, toMs: number): Point[] {
    return (this.select.all(provider, zone, emissionFactor, fromMs, toMs) as Row[]).map(toPoint);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
