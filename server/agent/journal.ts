/**
 * An append-only journal in front of the agent's SQLite database. BeginWindow, EndWindow and
 * CancelWindow must be durable before they are answered (a client told "begun" must be able to end the
 * window after the agent is killed), but a SQLite commit writes whole 4 KiB pages of the table and its
 * indexes to the WAL: ~30-60 µs per RPC on the request path. One write(2) of a JSON line costs ~2 µs and
 * gives the same guarantee as SQLite's WAL at synchronous=NORMAL: a killed process loses nothing that was
 * written; a power failure may lose the last writes (neither fsyncs). The store moves journaled records
 * into SQLite in batches, off the request path, and empties the journal; on open it replays whatever a
 * killed process left. Records are applied idempotently, so replaying one that already reached SQLite
 * (killed between the commit and the truncation) changes nothing.
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";

export class Journal {
  private fd: number | undefined;
  /** Bytes of whole records in the file: a failed append is cut back to it, so no torn line hides later ones. */
  private sizeBytes: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, "a+");
    this.sizeBytes = fstatSync(this.fd).size;
  }

  /**
   * The records in the file, oldest first. An unterminated last line is a torn append (the process died in
   * the write, so it was never acknowledged) and is left out. A complete line that does not parse should not
   * exist: it is skipped, counted in badLines, and the records around it are kept.
   */
  read(): { records: unknown[]; badLines: number } {
    const records: unknown[] = [];
    let badLines = 0;
    const text = readFileSync(this.path, "utf8");
    for (let start = 0, end = text.indexOf("\n"); end >= 0; start = end + 1, end = text.indexOf("\n", start)) {
      try {
        records.push(JSON.parse(text.slice(start, end)));
      } catch {
        badLines++;
      }
    }
    return { records, badLines };
  }

  /**
   * Appends one record, JSON text without line breaks (JSON.stringify never writes any), with a single
   * write(2); throws if the write fails (the caller must not acknowledge what it recorded).
   */
  append(json: string): void {
    const line = `${json}\n`;
    const bytes = Buffer.byteLength(line);
    let written = 0;
    try {
      written = writeSync(this.fd!, line);
    } finally {
      if (written !== bytes) ftruncateSync(this.fd!, this.sizeBytes);
    }
    if (written !== bytes) throw new Error(`short write to ${this.path}: ${written} of ${bytes} bytes (disk full?)`);
    this.sizeBytes += written;
  }

  /** Empties the journal (every record in it has been committed elsewhere). */
  clear(): void {
    ftruncateSync(this.fd!, 0);
    this.sizeBytes = 0;
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}
