/**
 * Moves the agent database's write-ahead log into the database file from a worker thread with its own
 * connection. A checkpoint copies pages and fsyncs (milliseconds under load); on the main thread every
 * request queued behind it would wait. PASSIVE: it neither waits for nor blocks the main connection.
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
const state = { failing: false };
const checkpoint = () => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
    if (state.failing) parentPort.postMessage({ ok: true });
    state.failing = false;
  } catch (err) {
    state.failing = true;
    parentPort.postMessage({ error: String((err && err.message) || err), code: err && err.code });
  }
};
const timer = setInterval(checkpoint, workerData.everyMs);
parentPort.on("message", (msg) => {
  if (msg !== "stop") return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.postMessage({ stopped: true });
});
`;

export class WalCheckpointer {
  private readonly worker: Worker;
  private stopping = false;
  private died = false;

  /** Disk failures (a full disk) go to `disk`, logged once per episode with the store's; others are logged each time. */
  constructor(dbPath: string, everyMs: number, log: Logger, onDied: () => void = () => undefined, disk?: DiskEpisode) {
    const sqlite = createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(SOURCE, { eval: true, workerData: { sqlite, path: dbPath, everyMs } });
    this.worker.on("message", (msg: { error?: string; code?: string; ok?: boolean }) => {
      if (msg.ok) disk?.succeeded(TARGET);
      if (msg.error === undefined) return;
      const err = Object.assign(new Error(msg.error), { code: msg.code });
      if (disk && disk.failed(TARGET, err, "moving agent.db's write-ahead log into the database (checkpoint)") !== err) return;
      log.warn({ err: msg.error }, "WAL checkpoint failed");
    });
    const died = (why: string, err?: unknown) => {
      if (this.stopping || this.died) return;
      this.died = true;
      log.warn(
        { err, why },
        "the WAL checkpointer thread died: SQLite now checkpoints on the main connection (wal_autocheckpoint), which adds latency to the requests that trigger it",
      );
      onDied();
    };
    this.worker.on("error", (err) => died("error", err));
    this.worker.on("exit", (code) => died(`exit code ${code}`));
    this.worker.unref();
  }

  /** Whether the worker died and the fallback was taken. */
  get fallenBack(): boolean {
    return this.died;
  }

  /** A last checkpoint, then the worker ends (terminated if it does not within 2 s). */
  async stop(): Promise<void> {
    this.stopping = true;
    const stopped = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      this.worker.on("message", (msg: { stopped?: boolean }) => msg.stopped && (clearTimeout(timer), resolve()));
      this.worker.once("exit", () => (clearTimeout(timer), resolve()));
    });
    this.worker.postMessage("stop");
    await stopped;
    await this.worker.terminate();
  }
}
