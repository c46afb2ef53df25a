/**
 * The agent's SQLite database (CARBONMON_DATA_DIR/agent.db): open windows with their begin edges, ended
 * windows' results for the retention period, per-run checkpoints of every device (so a window can be
 * ended after the agent was killed), and the boundary log: every device's cumulative energy at each 5-minute
 * UTC boundary, which splits a window's energy exactly at intensity-period boundaries. WAL with synchronous=NORMAL: a killed process loses nothing committed.
 *
 * Opening, ending and cancelling a window are written to a journal (journal.ts, agent.journal beside the
 * database) before the RPC is answered, and moved into SQLite in batches every flushDelayMs. Every other
 * method moves the journal first, so reads and later writes see every window in order.
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { AppError, Code } from "../../shared/errors.js";
import { silentLogger, type Logger } from "../../shared/log.js";
import type { Anchor, RunSpan } from "../core/window-energy.js";
import { DiskError, DiskEpisode } from "./disk-episode.js";
import { openJournal, type Journal, type JournalOptions } from "./journal.js";
import { decodeAnchor, decodeJournalRecord, encodeAnchor, RECORD_VERSION, RecordError, type JournalRecord } from "./records.js";

export type { JournalRecord };

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
  /** The Measurement's protobuf bytes (result.ts); JSON text in rows written by agents before the journal. */
  result: Uint8Array | string | null;
  /** JSON: the energy pieces priced for carbon (kept to ask again for pending or provisional grams). */
  segments: string | null;
  /** Pricing attempts so far. */
  carbonTries: number;
}

/** A device's cumulative energy at a boundary, as logged. */
export interface BoundaryRow {
  deviceId: string;
  tMs: number;
  runId: number;
  cumJ: number;
}

/** SQLite's codes for a file that is not (or no longer) a database. */
const DAMAGED = new Set(["SQLITE_NOTADB", "SQLITE_CORRUPT"]);

/** Only this agent writes agent.db (see lockDataDir): a busy database is a stray reader, not worth a long wait. */
const BUSY_TIMEOUT_MS = 250;

/**
 * One agent per data directory. The ids and open keys of journaled windows live in the agent's memory
 * until they reach SQLite, so a second agent (a `carbonmon run` without --agent on the daemon's host, a new
 * agent started before the old one has stopped) would hand out the same ids and empty the other's journal.
 * The lock is an exclusive SQLite lock on agent.lock (a POSIX lock, held by this connection): the kernel
 * drops it when the process dies, even by SIGKILL, so a restarted agent never waits for a stale lock.
 */
function lockDataDir(dataDir: string): Database.Database {
  const path = join(dataDir, "agent.lock");
  const lock = new Database(path, { timeout: 0 });
  try {
    lock.pragma("locking_mode = EXCLUSIVE");
    lock.exec("CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL, since_ms REAL NOT NULL); DELETE FROM holder;");
    lock.prepare("INSERT INTO holder VALUES (?, ?)").run(process.pid, Date.now());
    return lock;
  } catch (err) {
    lock.close();
    if (DAMAGED.has((err as { code?: string }).code ?? "")) {
      throw new AppError(Code.FailedPrecondition, `${path} is damaged (${(err as Error).message})`, {
        hint: `delete ${path}: it only marks which agent uses the directory and holds no data`,
        cause: err,
      });
    }
    if ((err as { code?: string }).code !== "SQLITE_BUSY") throw err;
    throw new AppError(Code.FailedPrecondition, `another carbonmon agent is using the data directory ${dataDir}`, {
      hint: "stop that agent first, give this one its own CARBONMON_DATA_DIR, or (carbonmon run) use --agent to measure through the running one",
      cause: err,
    });
  }
}

/**
 * JSON.stringify of an end record (with its version), without its scan of the ~1.2 KB of base64 (which
 * needs no escaping): ~0.2 µs instead of ~1.5 µs on every EndWindow.
 */
export function endRecordJson([, id, endMs, resultBase64, segments, carbonNextMs]: Extract<JournalRecord, { 0: "e" }>): string {
  return `["e",${JSON.stringify(id)},${JSON.stringify(endMs)},"${resultBase64}",${JSON.stringify(segments)},${JSON.stringify(carbonNextMs)},${RECORD_VERSION}]`;
}

export interface AgentStoreOptions {
  /** How long journaled changes wait before they are moved into SQLite together (default 50 ms). */
  flushDelayMs?: number;
  /** Told when moving the journal into SQLite fails (the records stay in the journal; tried again later). */
  onFlushError?: (err: unknown) => void;
  /** Told when the journal left by the last run had unreadable lines (never expected: only a torn tail is). */
  onJournalDamaged?: (message: string) => void;
  /** How the journal appends (journal.ts): mapped when possible. */
  journal?: JournalOptions;
  /** Told when a stored record could not be decoded and was set aside (storage/records.ts). */
  onRecordSetAside?: (message: string) => void;
  /** Where disk failures are logged, once per episode (disk-episode.ts). */
  log?: Logger;
}

const JOURNAL = "agent.journal";
/**
 * Kinds of writes, for the disk episode: one ends when every kind that failed in it has succeeded again
 * (a delete or a truncation succeeding on a full disk says nothing about appends).
 */
const W = {
  append: "journal append",
  clear: "journal truncation",
  flush: "journal flush",
  edges: "begin edges",
  carbon: "grams",
  boundaries: "energy boundaries",
  checkpoint: "device checkpoint",
  purge: "purge",
} as const;

interface Row {
  id: number;
  key: string;
  state: "open" | "ended";
  begin_ms: number;
  end_ms: number | null;
  run_id: number;
  spec: string;
  edges: string | null;
  result: Uint8Array | string | null;
  segments: string | null;
  carbon_tries: number | null;
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
CREATE TABLE IF NOT EXISTS set_aside (
  id INTEGER NOT NULL,
  found_ms REAL NOT NULL,
  reason TEXT NOT NULL,
  row TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS boundaries (
  device_id TEXT NOT NULL,
  t_ms REAL NOT NULL,
  run_id INTEGER NOT NULL,
  cum_j REAL NOT NULL,
  PRIMARY KEY (device_id, t_ms)
) WITHOUT ROWID;
`;

/** Columns added after the first release: added to older databases on open. */
const ADDED_COLUMNS = [
  ["segments", "TEXT"],
  ["carbon_next_ms", "REAL"],
  ["carbon_tries", "INTEGER NOT NULL DEFAULT 0"],
] as const;

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
  segments: r.segments,
  carbonTries: r.carbon_tries ?? 0,
});

export class AgentStore {
  readonly runId: number;
  readonly path: string;
  private readonly db: Database.Database;
  /** Held open for the store's life: while it is, no other agent can open this data directory. */
  private readonly lock: Database.Database;
  private readonly stmt;
  private readonly journal: Journal;
  /** Journaled records not yet in SQLite, oldest first. */
  private readonly queued: JournalRecord[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly flushDelayMs: number;
  private readonly onFlushError: (err: unknown) => void;
  private readonly onRecordSetAside: (message: string) => void;
  /** Open windows, id to key (SQLite's unique index sees them only after a flush). */
  private readonly openById = new Map<number, string>();
  private readonly openKeys = new Set<string>();
  private nextId: number;
  /** Disk failures of the data directory: told to callers as DiskErrors, logged once per episode. */
  readonly disk: DiskEpisode;

  constructor(dataDir: string, nowMs: number, options: AgentStoreOptions = {}) {
    this.disk = new DiskEpisode(dataDir, options.log ?? silentLogger());
    this.flushDelayMs = options.flushDelayMs ?? 50;
    this.onFlushError = options.onFlushError ?? (() => undefined);
    this.onRecordSetAside = options.onRecordSetAside ?? (() => undefined);
    let lock: Database.Database | undefined;
    try {
      mkdirSync(dataDir, { recursive: true });
      lock = lockDataDir(dataDir);
      this.path = join(dataDir, "agent.db");
      this.db = new Database(this.path, { timeout: BUSY_TIMEOUT_MS });
      this.lock = lock;
    } catch (err) {
      lock?.close();
      if (err instanceof AppError) throw err;
      throw new AppError(Code.FailedPrecondition, `cannot open the agent database in ${dataDir}: ${(err as Error).message}`, {
        hint: "set CARBONMON_DATA_DIR to a writable directory",
        cause: err,
      });
    }
    try {
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = NORMAL");
      // Checkpoints (WAL → database, with fsync) run in a worker thread (wal-checkpointer.ts), never here.
      this.db.pragma("wal_autocheckpoint = 0");
      this.db.exec(SCHEMA);
      const have = new Set((this.db.prepare("PRAGMA table_info(windows)").all() as Array<{ name: string }>).map((c) => c.name));
      for (const [name, type] of ADDED_COLUMNS) if (!have.has(name)) this.db.exec(`ALTER TABLE windows ADD COLUMN ${name} ${type}`);
      this.db.exec("CREATE INDEX IF NOT EXISTS windows_carbon_due ON windows(carbon_next_ms) WHERE carbon_next_ms IS NOT NULL");
      this.runId = Number(this.db.prepare("INSERT INTO runs (started_ms) VALUES (?)").run(nowMs).lastInsertRowid);
    } catch (err) {
      this.db.close();
      lock.close();
      if (!DAMAGED.has((err as { code?: string }).code ?? "")) throw err;
      throw new AppError(Code.FailedPrecondition, `the agent database ${this.path} is damaged (${(err as Error).message})`, {
        hint: `move it aside (mv ${this.path} ${this.path}.damaged) and start again: a new one is created and agent.journal is replayed into it; open windows and results only in the old file are lost`,
        cause: err,
      });
    }
    this.stmt = {
      // Replaying a record that reached SQLite before the journal was emptied changes nothing (the id is
      // taken); any other conflict is a bug and throws rather than dropping an answered window.
      insert: this.db.prepare(
        "INSERT INTO windows (id, key, state, begin_ms, run_id, spec) VALUES (?, ?, 'open', ?, ?, ?) ON CONFLICT (id) DO NOTHING",
      ),
      setEdges: this.db.prepare("UPDATE windows SET edges = ? WHERE id = ?"),
      end: this.db.prepare(
        "UPDATE windows SET state = 'ended', end_ms = ?, result = ?, segments = ?, carbon_next_ms = ? WHERE id = ? AND state = 'open'",
      ),
      setCarbon: this.db.prepare("UPDATE windows SET result = ?, carbon_next_ms = ?, carbon_tries = carbon_tries + 1 WHERE id = ?"),
      carbonPending: this.db.prepare("SELECT COUNT(*) AS n FROM windows WHERE carbon_next_ms IS NOT NULL AND state = 'ended'"),
      carbonDue: this.db.prepare("SELECT * FROM windows WHERE carbon_next_ms <= ? AND state = 'ended' ORDER BY carbon_next_ms LIMIT ?"),
      insertBoundary: this.db.prepare("INSERT OR IGNORE INTO boundaries (device_id, t_ms, run_id, cum_j) VALUES (?, ?, ?, ?)"),
      boundaries: this.db.prepare("SELECT t_ms, run_id, cum_j FROM boundaries WHERE device_id = ? AND t_ms > ? AND t_ms < ? ORDER BY t_ms"),
      purgeBoundaries: this.db.prepare("DELETE FROM boundaries WHERE t_ms < ?"),
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
      row: this.db.prepare("SELECT * FROM windows WHERE id = ?"),
      setAside: this.db.prepare("INSERT INTO set_aside (id, found_ms, reason, row) VALUES (?, ?, ?, ?)"),
      totalChanges: this.db.prepare("SELECT total_changes()").pluck(),
      deleteWindow: this.db.prepare("DELETE FROM windows WHERE id = ?"),
      stopRepricing: this.db.prepare("UPDATE windows SET carbon_next_ms = NULL WHERE id = ?"),
    };
    this.journal = openJournal(join(dataDir, "agent.journal"), options.journal);
    // What a killed agent journaled and had not moved yet.
    const { records, badLines } = this.journal.read();
    const refused = this.replay(records);
    if (badLines > 0 || refused.length > 0) {
      const copy = `${this.journal.path}.damaged-${nowMs.toFixed(0)}`;
      copyFileSync(this.journal.path, copy);
      const why = refused.length > 0 ? ` (refused: ${refused.slice(0, 3).join("; ")})` : "";
      options.onJournalDamaged?.(
        `${badLines} unreadable line(s) in ${this.journal.path} were skipped, ${records.length - refused.length} record(s) replayed and ` +
          `${refused.length} refused by the database${why}; the file was kept as ${copy}`,
      );
    }
    this.journal.clear();
    for (const r of this.db.prepare("SELECT id, key FROM windows WHERE state = 'open'").all() as Array<{ id: number; key: string }>) {
      this.openById.set(r.id, r.key);
      this.openKeys.add(r.key);
    }
    // Ids are never reused (AUTOINCREMENT keeps the highest ever given in sqlite_sequence).
    const seq = this.db
      .prepare(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'windows'), 0), coalesce((SELECT max(id) FROM windows), 0)) AS n",
      )
      .get() as { n: number };
    this.nextId = seq.n + 1;
  }

  /** SQLite's checkpoints on this connection: every N WAL pages (0: none, a worker checkpoints instead). */
  /** Rows changed on this connection since it opened (SQLite's total_changes): how much the log has grown. */
  get totalChanges(): number {
    return this.db.open ? (this.stmt.totalChanges.get() as number) : 0;
  }

  get walAutocheckpointPages(): number {
    return this.db.pragma("wal_autocheckpoint", { simple: true }) as number;
  }

  /** Lets SQLite checkpoint on this connection again (the checkpointer thread died). */
  useAutocheckpoint(pages = 1000): void {
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${Math.max(1, Math.floor(pages))}`);
  }

  /** How the journal appends: "mapped" (no system call), or "write" with the reason mapping was not possible. */
  get journalMode(): { mode: Journal["mode"]; fallbackReason: string | undefined } {
    return { mode: this.journal.mode, fallbackReason: this.journal.fallbackReason };
  }

  /** Records a new open window (journaled); ALREADY_EXISTS if the key is open. */
  insertOpen(key: string, beginMs: number, spec: string): number {
    if (this.openKeys.has(key))
      throw new AppError(Code.AlreadyExists, `window '${key}' is already open`, { hint: "end or cancel it first, or choose another key" });
    const id = this.nextId++;
    // The spec is JSON already: written into the line as it is, not escaped as a string.
    this.record(
      ["b", id, key, beginMs, this.runId, spec],
      `["b",${id},${JSON.stringify(key)},${JSON.stringify(beginMs)},${this.runId},${spec},${RECORD_VERSION}]`,
      `recording BeginWindow '${key}' in ${JOURNAL}`,
    );
    this.openById.set(id, key);
    this.openKeys.add(key);
    return id;
  }

  /** Throws a DiskError (already reported by the disk episode) when the disk fails. */
  setEdges(rows: ReadonlyArray<{ id: number; edges: string }>): void {
    this.flush();
    this.write(W.edges, "storing begin edges in agent.db", () =>
      this.db.transaction(() => {
        for (const r of rows) this.stmt.setEdges.run(r.edges, r.id);
      })(),
    );
  }

  /** Stores an ended window's result; segments and carbonNextMs when its grams are still to be asked for. */
  end(id: number, endMs: number, result: Uint8Array, segments: string | null = null, carbonNextMs: number | null = null): void {
    if (!this.openById.has(id)) return;
    const record: JournalRecord = [
      "e",
      id,
      endMs,
      Buffer.from(result.buffer, result.byteOffset, result.byteLength).toString("base64"),
      segments,
      carbonNextMs,
    ];
    // If this throws (a full disk), the window stays open: EndWindow can be asked again and measures it whole.
    this.record(record, endRecordJson(record), `recording EndWindow '${this.openById.get(id)}' in ${JOURNAL}`);
    this.closeOpen(id);
  }

  /**
   * Replaces a result with later carbon figures; carbonNextMs null: nothing left to ask for. False when the
   * disk failed (counted by the disk episode, not thrown: the window keeps its earlier figures and stays
   * due, so its grams are asked for again later).
   */
  setCarbon(id: number, result: Uint8Array, carbonNextMs: number | null): boolean {
    try {
      this.flush();
      this.write(W.carbon, "storing a window's grams in agent.db", () => this.stmt.setCarbon.run(result, carbonNextMs, id));
      return true;
    } catch (err) {
      if (err instanceof DiskError) return false;
      throw err;
    }
  }

  /**
   * Ended windows whose grams are still pending or provisional (asked for again later). Read without
   * moving the journal in first (metrics: cheap, and at most one flush period behind).
   */
  carbonPendingCount(): number {
    return (this.stmt.carbonPending.get() as { n: number }).n;
  }

  /** Ended windows whose grams are due to be asked for again, most overdue first. */
  carbonDue(nowMs: number, limit: number): StoredWindow[] {
    // Windows still in the journal are due in a later round: a full disk (counted) does not stop the others.
    this.flushUnlessDiskFails();
    return (this.stmt.carbonDue.all(nowMs, limit) as Row[]).map(toWindow);
  }

  /** False when the disk failed (counted by the disk episode, not thrown: the boundary log keeps its marks in memory). */
  insertBoundaries(rows: readonly BoundaryRow[]): boolean {
    try {
      this.write(W.boundaries, "logging energy boundaries in agent.db", () =>
        this.db.transaction(() => {
          for (const r of rows) this.stmt.insertBoundary.run(r.deviceId, r.tMs, r.runId, r.cumJ);
        })(),
      );
      return true;
    } catch (err) {
      if (err instanceof DiskError) return false;
      throw err;
    }
  }

  /** A device's logged boundaries strictly inside (fromMs, toMs), oldest first. */
  boundaries(deviceId: string, fromMs: number, toMs: number): BoundaryRow[] {
    const rows = this.stmt.boundaries.all(deviceId, fromMs, toMs) as Array<{ t_ms: number; run_id: number; cum_j: number }>;
    return rows.map((r) => ({ deviceId, tMs: r.t_ms, runId: r.run_id, cumJ: r.cum_j }));
  }

  /** 0 when the disk failed (counted by the disk episode, not thrown: the next hourly purge tries again). */
  purgeBoundariesBefore(cutoffMs: number): number {
    try {
      return this.write(W.purge, "purging old energy boundaries from agent.db", () => this.stmt.purgeBoundaries.run(cutoffMs).changes);
    } catch (err) {
      if (err instanceof DiskError) return 0;
      throw err;
    }
  }

  cancel(id: number): void {
    if (!this.openById.has(id)) return;
    this.record(["c", id], `["c",${id},${RECORD_VERSION}]`, `recording CancelWindow '${this.openById.get(id)}' in ${JOURNAL}`);
    this.closeOpen(id);
  }

  /** Moves journaled records into SQLite in one transaction, then empties the journal. */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.queued.length === 0) return;
    try {
      this.write(W.flush, `moving ${JOURNAL} into agent.db`, () => this.apply(this.queued));
    } catch (err) {
      if (this.db.open) this.scheduleFlush(1000); // the records stay queued and journaled; tried again
      throw err;
    }
    this.queued.length = 0;
    // Frees space rather than needing it; if it fails, the records are replayed idempotently at the next open.
    this.write(W.clear, `emptying ${JOURNAL}`, () => this.journal.clear());
  }

  /** flush(), except that a disk failure (counted by the disk episode) is not thrown: for reads that may lag. */
  private flushUnlessDiskFails(): void {
    try {
      this.flush();
    } catch (err) {
      if (!(err instanceof DiskError)) throw err;
    }
  }

  /**
   * Runs a write to the journal or the database: a disk failure becomes a DiskError (RESOURCE_EXHAUSTED or
   * UNAVAILABLE, naming the data directory) and is counted by the disk episode; a success may end the episode.
   */
  private write<T>(target: string, action: string, fn: () => T): T {
    let result: T;
    try {
      result = fn();
    } catch (err) {
      throw this.disk.failed(target, err, action);
    }
    this.disk.succeeded(target, target === W.clear || target === W.purge);
    return result;
  }

  /** Journals a change (durable when this returns) and queues it for SQLite; throws (a DiskError) if it cannot. */
  private record(r: JournalRecord, json = JSON.stringify(r), action = `appending to ${JOURNAL}`): void {
    this.write(W.append, action, () => this.journal.append(json));
    this.queued.push(r);
    if (this.flushTimer === undefined) this.scheduleFlush(this.flushDelayMs);
  }

  /** A failed flush (here or in any method that flushes first) keeps the records and is tried again a second later. */
  private scheduleFlush(delayMs: number): void {
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      try {
        this.flush();
      } catch (err) {
        // flush() has set the next try. Disk failures are the disk episode's to log (once, not every second).
        if (!(err instanceof DiskError)) this.onFlushError(err);
      }
    }, delayMs).unref();
  }

  private closeOpen(id: number): void {
    this.openKeys.delete(this.openById.get(id)!);
    this.openById.delete(id);
  }

  private apply(records: readonly JournalRecord[]): void {
    if (records.length === 0) return;
    this.db.transaction(() => {
      for (const r of records) this.applyOne(r);
    })();
  }

  /**
   * Replays a killed agent's journal: each line is decoded and validated first (records.ts); a line that
   * does not decode, or that the database refuses, is reported and never applied, not a reason not to start.
   */
  private replay(lines: readonly unknown[]): string[] {
    const refused: string[] = [];
    this.db.transaction(() => {
      for (const line of lines) {
        try {
          this.applyOne(decodeJournalRecord(line));
        } catch (err) {
          refused.push(`${JSON.stringify(line)?.slice(0, 80)}: ${(err as Error).message}`);
        }
      }
    })();
    return refused;
  }

  /**
   * Moves a window whose stored record cannot be decoded out of the windows table, into set_aside (kept
   * for inspection, with the reason): it is neither served nor counted as open, and its key is free again.
   */
  setAside(id: number, reason: string): void {
    this.flush();
    const row = this.stmt.row.get(id) as Row | undefined;
    if (!row) return;
    const copy = JSON.stringify({
      ...row,
      result: row.result instanceof Uint8Array ? Buffer.from(row.result).toString("base64") : row.result,
    });
    this.db.transaction(() => {
      this.stmt.setAside.run(id, Date.now(), reason, copy);
      this.stmt.deleteWindow.run(id);
    })();
    const key = this.openById.get(id);
    if (key !== undefined) this.closeOpen(id);
    this.onRecordSetAside(
      `window ${id}${key !== undefined ? ` ('${key}')` : ""} was set aside (table set_aside in ${this.path}): ${reason}`,
    );
  }

  /** An ended window whose energy pieces cannot be decoded keeps its result, and is not priced again. */
  stopRepricing(id: number, reason: string): void {
    this.flush();
    this.stmt.stopRepricing.run(id);
    this.onRecordSetAside(`window ${id}: its grams are no longer asked for again: ${reason}`);
  }

  private applyOne(r: JournalRecord): void {
    if (r[0] === "b") this.stmt.insert.run(r[1], r[2], r[3], r[4], r[5]);
    else if (r[0] === "e") this.stmt.end.run(r[2], Buffer.from(r[3], "base64"), r[4], r[5], r[1]);
    else this.stmt.cancel.run(r[1]);
  }

  openWindows(): StoredWindow[] {
    this.flush();
    return (this.stmt.open.all() as Row[]).map(toWindow);
  }

  latestEnded(key: string): StoredWindow | undefined {
    this.flush();
    const row = this.stmt.latestEnded.get(key) as Row | undefined;
    return row && toWindow(row);
  }

  recentlyEnded(limit: number): StoredWindow[] {
    this.flush();
    return (this.stmt.ended.all(limit) as Row[]).map(toWindow);
  }

  /** Deletes ended windows older than the cutoff; returns how many. */
  purgeEndedBefore(cutoffMs: number): number {
    this.flush();
    return this.write(W.purge, "purging ended windows from agent.db", () => this.stmt.purge.run(cutoffMs).changes);
  }

  /** This run's first reading and latest checkpoint of each device. */
  /** Throws a DiskError (already reported by the disk episode) when the disk fails. */
  checkpoint(spans: ReadonlyArray<{ deviceId: string; first: Anchor; last: Anchor }>): void {
    this.write(W.checkpoint, "storing the devices' checkpoint in agent.db", () =>
      this.db.transaction(() => {
        for (const s of spans) this.stmt.upsertRun.run(this.runId, s.deviceId, encodeAnchor(s.first), encodeAnchor(s.last));
      })(),
    );
  }

  /** What each run since `fromRunId` saw of a device, oldest first (a checkpoint that does not decode is left out, and reported). */
  runsSince(deviceId: string, fromRunId: number): RunSpan[] {
    const rows = this.stmt.runs.all(deviceId, fromRunId) as Array<{ run_id: number; first: string; last: string }>;
    return rows.flatMap((r) => {
      try {
        return [{ runId: r.run_id, first: decodeAnchor(r.first), last: decodeAnchor(r.last) }];
      } catch (err) {
        if (!(err instanceof RecordError)) throw err;
        this.onRecordSetAside(`run ${r.run_id}'s checkpoint of ${deviceId} is not used: ${err.message}`);
        return [];
      }
    });
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  /** Moves the journal into SQLite and closes both; if that fails, the journal keeps the records for the next open. */
  close(): void {
    if (!this.db.open) return;
    try {
      this.flush();
    } finally {
      clearTimeout(this.flushTimer); // a failed last flush: its records stay in the journal for the next open
      this.flushTimer = undefined;
      this.journal.close();
      this.db.close();
      this.lock.close();
    }
  }
}
