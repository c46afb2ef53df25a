/**
 * Moves the agent database's write-ahead log into the database file from a worker thread with its own
 * connection. A checkpoint copies pages and fsyncs (milliseconds under load); on the main thread every
 * request queued behind it would wait. PASSIVE: it neither waits for nor blocks the main connection.
 *
 * The thread exists only while there is work: a worker thread costs ~10 MB of an idle agent's memory, and
 * an idle agent writes only its device checkpoints (a dozen rows every 5 s). So the main thread looks at
 * the rows its connection has changed every `everyMs`; once `changesPerCheckpoint` have accumulated, it
 * starts the thread (if none runs) and asks it for a checkpoint; the thread ends itself after
 * `idleExitMs` without a request. A thread that dies otherwise hands checkpointing back to SQLite on the
 * main connection (onDied).
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Logger } from "../../shared/log.js";
import type { DiskEpisode } from "./disk-episode.js";

const TARGET = "WAL checkpoint";

/** Plain CommonJS, so the worker needs no TypeScript loader. */
const SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.sqlite);
const db = new Database(workerData.path, { fileMustExist: true });
const state = { failing: false, idle: undefined };
const checkpoint = () => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
    parentPort.postMessage({ ok: true }); // after a failure (its episode), or in a thread started after one
    state.failing = false;
  } catch (err) {
    state.failing = true;
    parentPort.postMessage({ error: String((err && err.message) || err), code: err && err.code });
  }
};
const end = (reply) => {
  clearTimeout(state.idle);
  db.close();
  parentPort.postMessage(reply);
  parentPort.close();
};
const rest = () => {
  clearTimeout(state.idle);
  state.idle = setTimeout(() => end({ idle: true }), workerData.idleExitMs);
};
parentPort.on("message", (msg) => {
  if (msg === "checkpoint") {
    checkpoint();
    rest();
  } else if (msg === "stop") {
    checkpoint();
    end({ stopped: true });
  }
});
rest();
`;

export interface WalCheckpointerOptions {
  /** How often the main thread looks at what its connection has written, ms. */
  everyMs: number;
  /** Rows changed on the main connection so far (AgentStore.totalChanges). */
  changes: () => number;
  /** Rows changed between checkpoints (default 2,000: a few MB of log at most). */
  changesPerCheckpoint?: number;
  /** The thread ends after this long without a checkpoint to do, ms (default 30 s). */
  idleExitMs?: number;
  log: Logger;
  /** The thread died (not idle, not stopped): SQLite checkpoints on the main connection from now on. */
  onDied?: () => void;
  /** Disk failures (a full disk) go here, logged once per episode with the store's; others are logged each time. */
  disk?: DiskEpisode;
}

export class WalCheckpointer {
  private worker: Worker | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly sqlite: string;
  private checkpointedAt: number;
  private stopping = false;
  private died = false;
  /** Threads started so far (tests, and what an idle agent costs). */
  started = 0;

  constructor(
    private readonly dbPath: string,
    private readonly options: WalCheckpointerOptions,
  ) {
    this.sqlite = createRequire(import.meta.url).resolve("better-sqlite3");
    this.checkpointedAt = options.changes();
    this.timer = setInterval(() => this.look(), options.everyMs).unref();
  }

  /** Whether a checkpointer thread runs now. */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Whether the worker died and the fallback was taken. */
  get fallenBack(): boolean {
    return this.died;
  }

  /** Asks for a checkpoint now (starting the thread if none runs). */
  checkpointNow(): void {
    if (this.stopping || this.died) return;
    this.checkpointedAt = this.options.changes();
    (this.worker ??= this.start()).postMessage("checkpoint");
  }

  private look(): void {
    // A checkpoint that failed (a full disk) is asked again at every look until one succeeds.
    if (this.failing || this.options.changes() - this.checkpointedAt >= (this.options.changesPerCheckpoint ?? 2000)) this.checkpointNow();
  }

  /** The latest checkpoint failed. */
  private failing = false;

  private start(): Worker {
    const { log, disk } = this.options;
    const worker = new Worker(SOURCE, {
      eval: true,
      workerData: { sqlite: this.sqlite, path: this.dbPath, idleExitMs: this.options.idleExitMs ?? 30_000 },
    });
    this.started++;
    let ended = false;
    worker.on("message", (msg: { error?: string; code?: string; ok?: boolean; idle?: boolean; stopped?: boolean }) => {
      if (msg.idle || msg.stopped) ended = true;
      if (msg.ok) {
        this.failing = false;
        disk?.succeeded(TARGET);
      }
      if (msg.error === undefined) return;
      this.failing = true;
      const err = Object.assign(new Error(msg.error), { code: msg.code });
      if (disk && disk.failed(TARGET, err, "moving agent.db's write-ahead log into the database (checkpoint)") !== err) return;
      log.warn({ err: msg.error }, "WAL checkpoint failed");
    });
    const gone = (why: string, err?: unknown) => {
      if (this.worker === worker) this.worker = undefined;
      if (ended || this.stopping || this.died) return;
      this.died = true;
      clearInterval(this.timer);
      log.warn(
        { err, why },
        "the WAL checkpointer thread died: SQLite now checkpoints on the main connection (wal_autocheckpoint), which adds latency to the requests that trigger it",
      );
      this.options.onDied?.();
    };
    worker.on("error", (err) => gone("error", err));
    worker.on("exit", (code) => gone(`exit code ${code}`));
    worker.unref();
    return worker;
  }

  /** A last checkpoint if a thread runs, then it ends (terminated if it does not within 2 s). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    const worker = this.worker;
    if (!worker) return;
    const stopped = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      worker.on("message", (msg: { stopped?: boolean }) => msg.stopped && (clearTimeout(timer), resolve()));
      worker.once("exit", () => (clearTimeout(timer), resolve()));
    });
    worker.postMessage("stop");
    await stopped;
    await worker.terminate();
  }
}
