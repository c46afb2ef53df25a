/**
 * The agent's SQLite database (CARBONMON_DATA_DIR/agent.db): open windows with their begin edges, ended
 * windows' results for the retention period, and per-run checkpoints of every device (so a window can be
 * ended after the agent was killed). WAL with synchronous=NORMAL: a killed process loses nothing committed.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { AppError, Code } from "../shared/errors.js";
import type { Anchor, RunSpan } from "./core/restart.js";

export interface StoredWindow {
  id: number;
  key: string;
  state: "open" | "ended";
  beginMs: number;
  endMs: number | null;
  runId: number;
  /** JSON chosen by the window manager: labels, devices. */
  spec: string;
  /** JSON: resolved begin edges, per device. */
  edges: string | null;
  /** JSON: the Measurement. */
  result: string | null;
}

interface Row {
  id: number;
  key: string;
  state: "open" | "ended";
  begin_ms: number;
  end_ms: number | null;
  run_id: number;
  spec: string;
  edges: string | null;
  result: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, started_ms REAL NOT NULL);
CREATE TABLE IF NOT EXISTS windows (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('open', 'ended')),
  begin_ms REAL NOT NULL,
  end_ms REAL,
  run_id INTEGER NOT NULL,
  spec TEXT NOT NULL,
  edges TEXT,
  result TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS windows_open_key ON windows(key) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS windows_key ON windows(key, id);
CREATE INDEX IF NOT EXISTS windows_ended ON windows(state, end_ms);
CREATE TABLE IF NOT EXISTS run_devices (
  run_id INTEGER NOT NULL,
  device_id TEXT NOT NULL,
  first TEXT NOT NULL,
  last TEXT NOT NULL,
  PRIMARY KEY (run_id, device_id)
);
`;

const toWindow = (r: Row): StoredWindow => ({
  id: r.id,
  key: r.key,
  state: r.state,
  beginMs: r.begin_ms,
  endMs: r.end_ms,
  runId: r.run_id,
  spec: r.spec,
  edges: r.edges,
  result: r.result,
});

export class AgentStore {
  readonly runId: number;
  private readonly db: Database.Database;
  private readonly stmt;

  constructor(dataDir: string, nowMs: number) {
    try {
      mkdirSync(dataDir, { recursive: true });
      this.db = new Database(join(dataDir, "agent.db"));
    } catch (err) {
      throw new AppError(Code.FailedPrecondition, `cannot open the agent database in ${dataDir}: ${(err as Error).message}`, {
        hint: "set CARBONMON_DATA_DIR to a writable directory",
        cause: err,
      });
    }
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    // Checkpoints (WAL → database, with fsync) run from checkpointWal() on a timer, never inside a request.
    this.db.pragma("wal_autocheckpoint = 0");
    this.db.exec(SCHEMA);
    this.runId = Number(this.db.prepare("INSERT INTO runs (started_ms) VALUES (?)").run(nowMs).lastInsertRowid);
    this.stmt = {
      insert: this.db.prepare("INSERT INTO windows (key, state, begin_ms, run_id, spec) VALUES (?, 'open', ?, ?, ?)"),
      setEdges: this.db.prepare("UPDATE windows SET edges = ? WHERE id = ?"),
      end: this.db.prepare("UPDATE windows SET state = 'ended', end_ms = ?, result = ? WHERE id = ? AND state = 'open'"),
      setResult: this.db.prepare("UPDATE windows SET result = ? WHERE id = ?"),
      cancel: this.db.prepare("DELETE FROM windows WHERE id = ? AND state = 'open'"),
      open: this.db.prepare("SELECT * FROM windows WHERE state = 'open' ORDER BY id"),
      latestEnded: this.db.prepare("SELECT * FROM windows WHERE key = ? AND state = 'ended' ORDER BY id DESC LIMIT 1"),
      ended: this.db.prepare("SELECT * FROM windows WHERE state = 'ended' ORDER BY id DESC LIMIT ?"),
      purge: this.db.prepare("DELETE FROM windows WHERE state = 'ended' AND end_ms < ?"),
      upsertRun: this.db.prepare(
        "INSERT INTO run_devices (run_id, device_id, first, last) VALUES (?, ?, ?, ?) " +
          "ON CONFLICT (run_id, device_id) DO UPDATE SET last = excluded.last",
      ),
      runs: this.db.prepare("SELECT run_id, first, last FROM run_devices WHERE device_id = ? AND run_id >= ? ORDER BY run_id"),
    };
  }

  /** Records a new open window; ALREADY_EXISTS if the key is open (the unique index decides). */
  insertOpen(key: string, beginMs: number, spec: string): number {
    try {
      return Number(this.stmt.insert.run(key, beginMs, this.runId, spec).lastInsertRowid);
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") {
        throw new AppError(Code.AlreadyExists, `window '${key}' is already open`, { hint: "end or cancel it first, or choose another key" });
      }
      throw err;
    }
  }

  setEdges(rows: ReadonlyArray<{ id: number; edges: string }>): void {
    this.db.transaction(() => {
      for (const r of rows) this.stmt.setEdges.run(r.edges, r.id);
    })();
  }

  end(id: number, endMs: number, result: string): void {
    this.stmt.end.run(endMs, result, id);
  }

  /** Replaces a stored result (later carbon figures). */
  setResult(id: number, result: string): void {
    this.stmt.setResult.run(result, id);
  }

  cancel(id: number): void {
    this.stmt.cancel.run(id);
  }

  openWindows(): StoredWindow[] {
    return (this.stmt.open.all() as Row[]).map(toWindow);
  }

  latestEnded(key: string): StoredWindow | undefined {
    const row = this.stmt.latestEnded.get(key) as Row | undefined;
    return row && toWindow(row);
  }

  recentlyEnded(limit: number): StoredWindow[] {
    return (this.stmt.ended.all(limit) as Row[]).map(toWindow);
  }

  /** Deletes ended windows older than the cutoff; returns how many. */
  purgeEndedBefore(cutoffMs: number): number {
    return this.stmt.purge.run(cutoffMs).changes;
  }

  /** This run's first reading and latest checkpoint of each device. */
  checkpoint(spans: ReadonlyArray<{ deviceId: string; first: Anchor; last: Anchor }>): void {
    this.db.transaction(() => {
      for (const s of spans) this.stmt.upsertRun.run(this.runId, s.deviceId, JSON.stringify(s.first), JSON.stringify(s.last));
    })();
  }

  /** What each run since `fromRunId` saw of a device, oldest first. */
  runsSince(deviceId: string, fromRunId: number): RunSpan[] {
    const rows = this.stmt.runs.all(deviceId, fromRunId) as Array<{ run_id: number; first: string; last: string }>;
    return rows.map((r) => ({ runId: r.run_id, first: JSON.parse(r.first) as Anchor, last: JSON.parse(r.last) as Anchor }));
  }

  /** Moves the WAL into the database file; called off the request path. */
  checkpointWal(): void {
    this.db.pragma("wal_checkpoint(PASSIVE)");
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
