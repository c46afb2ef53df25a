/**
 * An append-only journal in front of the agent's SQLite database. BeginWindow, EndWindow and
 * CancelWindow must be durable before they are answered (a client told "begun" must be able to end the
 * window after the agent is killed), but a SQLite commit writes whole 4 KiB pages of the table and its
 * indexes to the WAL: ~30-60 µs per RPC on the request path. The store moves journaled records into SQLite
 * in batches, off the request path, and empties the journal; on open it replays whatever a killed process
 * left. Records are applied idempotently, so replaying one that already reached SQLite (killed between the
 * commit and the emptying) changes nothing.
 *
 * The file is JSON lines followed by zero bytes: a reader takes the text up to the first NUL (JSON text
 * never holds one: JSON.stringify escapes U+0000), and drops an unterminated last line (a record torn by
 * a kill in the middle of its append was never acknowledged).
 *
 * Two ways to append, one guarantee: what a killed process appended is in the file, as with SQLite's WAL
 * at synchronous=NORMAL; a power failure may lose the last appends (neither fsyncs). The agent chooses with
 * CARBONMON_JOURNAL_MODE (default write):
 *   - write: one write(2) per record. A journal truncated from outside is harmless (the next append goes
 *     to the new end; the records are also queued in memory for SQLite).
 *   - mapped (Linux): the file is mapped into memory (mmap MAP_SHARED through libc, with koffi) and a
 *     record is copied into the mapping. The mapping is the kernel's page cache of the file, so the record
 *     is the file's content as soon as the copy is done. No system call: ~0.2 µs, against ~1.2 µs for a
 *     write(2) in isolation. Its hazards cannot be checked without a system call per append, which is what
 *     mapping avoids: a file truncated from outside, or a block that cannot be backed (a full copy-on-write
 *     filesystem such as btrfs), makes the next append a SIGBUS that kills the agent without a log line.
 *     The file's blocks are written (zeros) before they are mapped, so a full ordinary disk is an error when
 *     the journal is created or grown. Where mapping is not possible it falls back to write (`mode` and
 *     `fallbackReason` say which is in use).
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readFileSync, readSync, writeSync } from "node:fs";
import koffi from "koffi";

export interface Journal {
  readonly path: string;
  readonly mode: "mapped" | "write";
  /** Why the journal writes with write(2) rather than through a mapping (mode "write"). */
  readonly fallbackReason: string | undefined;
  /** The records in the file, oldest first; complete lines that do not parse are counted in badLines. */
  read(): { records: unknown[]; badLines: number };
  /**
   * Appends one record, JSON text without line breaks (JSON.stringify never writes any); throws if it
   * cannot (the caller must not acknowledge what it recorded). Durable against a kill when this returns.
   */
  append(json: string): void;
  /** Empties the journal (every record in it has been committed elsewhere). */
  clear(): void;
  close(): void;
}

export interface JournalOptions {
  /** "write": one write(2) per append; "mapped" (the default here; the agent's is CARBONMON_JOURNAL_MODE): mapped when possible. */
  mode?: "mapped" | "write";
  /** The mapped file's first size, bytes (default 1 MiB; doubled when full). */
  initialBytes?: number;
}

const DEFAULT_BYTES = 1 << 20;
const NEWLINE = 0x0a;

/** Opens (creating) the journal at path, mapped when possible. */
export function openJournal(path: string, options: JournalOptions = {}): Journal {
  if (options.mode === "write") return new WriteJournal(path, undefined);
  const libc = mmapBinding();
  if (typeof libc === "string") return new WriteJournal(path, libc);
  try {
    return new MappedJournal(path, libc, options.initialBytes ?? DEFAULT_BYTES);
  } catch (err) {
    return new WriteJournal(path, `mapping ${path} failed: ${(err as Error).message}`);
  }
}

/** Splits journal text (up to its first NUL) into records; the unterminated last line is a torn append. */
function parse(text: string): { records: unknown[]; badLines: number } {
  const records: unknown[] = [];
  let badLines = 0;
  for (let start = 0, end = text.indexOf("\n"); end >= 0; start = end + 1, end = text.indexOf("\n", start)) {
    try {
      records.push(JSON.parse(text.slice(start, end)));
    } catch {
      badLines++;
    }
  }
  return { records, badLines };
}

/** Where the last whole record before `end` ends (0 if none). (lastIndexOf counts a negative offset from the end.) */
function wholeRecordsEnd(bytes: Buffer, end: number): number {
  return end === 0 ? 0 : bytes.lastIndexOf(NEWLINE, end - 1) + 1;
}

// ---- mapped ----

interface MmapBinding {
  mmap(length: number, fd: number): unknown;
  munmap(ptr: unknown, length: number): void;
}

let binding: MmapBinding | string | undefined;

/** libc's mmap and munmap, or why they cannot be had. Linux only (the constants are Linux's). */
function mmapBinding(): MmapBinding | string {
  if (binding !== undefined) return binding;
  if (process.platform !== "linux") return (binding = `mapped journals are implemented for Linux, not ${process.platform}`);
  try {
    const libc = koffi.load("libc.so.6");
    const mmap = libc.func("void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)");
    const munmap = libc.func("int munmap(void *addr, size_t length)");
    const PROT_READ_WRITE = 0x1 | 0x2;
    const MAP_SHARED = 0x1;
    const MAP_FAILED = 0xffffffffffffffffn;
    binding = {
      mmap(length, fd) {
        const ptr = mmap(null, length, PROT_READ_WRITE, MAP_SHARED, fd, 0);
        if (ptr === null || koffi.address(ptr) === MAP_FAILED) throw new Error(`mmap: errno ${koffi.errno()}`);
        return ptr;
      },
      munmap(ptr, length) {
        munmap(ptr, length);
      },
    };
  } catch (err) {
    binding = `libc's mmap could not be loaded: ${(err as Error).message}`;
  }
  return binding;
}

class MappedJournal implements Journal {
  readonly mode = "mapped";
  readonly fallbackReason = undefined;
  private fd: number | undefined;
  private ptr: unknown;
  /** The mapping; zero from `used` to the end (the invariant every append and clear keeps). */
  private bytes: Buffer;
  /** Bytes of whole records at the start of the mapping. */
  private used: number;

  constructor(
    readonly path: string,
    private readonly libc: MmapBinding,
    initialBytes: number,
  ) {
    // O_RDWR, not append mode: a shared writable mapping needs a descriptor open for reading and writing.
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    try {
      const size = fstatSync(fd).size;
      const capacity = Math.max(size, initialBytes);
      extendWithZeros(fd, size, capacity);
      this.ptr = libc.mmap(capacity, fd);
      this.bytes = Buffer.from(koffi.view(this.ptr, capacity));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.fd = fd;
    // What an earlier agent left: whole lines up to the first NUL. A torn tail is zeroed, so that appends
    // never extend it into a line that does not parse.
    let end = this.bytes.indexOf(0);
    if (end < 0) end = this.bytes.length;
    this.used = wholeRecordsEnd(this.bytes, end);
    this.bytes.fill(0, this.used, end);
  }

  read(): { records: unknown[]; badLines: number } {
    return parse(this.live().toString("utf8", 0, this.used));
  }

  append(json: string): void {
    const bytes = this.live();
    // Room for the worst case (3 UTF-8 bytes per UTF-16 unit) plus the newline, so the copy is never cut.
    if (this.used + json.length * 3 + 1 > bytes.length) this.grow(this.used + Buffer.byteLength(json) + 1);
    const at = this.used;
    const n = this.bytes.write(json, at, "utf8");
    // The newline last: a kill before it leaves an unterminated line, which readers drop.
    this.bytes[at + n] = NEWLINE;
    this.used = at + n + 1;
  }

  clear(): void {
    const bytes = this.live();
    // The first byte first: from then on the journal reads as empty, even if the process dies while the
    // rest is zeroed (a replayed cancel must never be lost while its begin is replayed).
    bytes[0] = 0;
    bytes.fill(0, 1, this.used);
    this.used = 0;
  }

  close(): void {
    if (this.fd === undefined) return;
    this.libc.munmap(this.ptr, this.bytes.length);
    this.bytes = Buffer.alloc(0);
    closeSync(this.fd);
    this.fd = undefined;
  }

  private live(): Buffer {
    if (this.fd === undefined) throw new Error(`the journal ${this.path} is closed`);
    return this.bytes;
  }

  /** Doubles the file (at least to `needed` bytes) and maps it again. */
  private grow(needed: number): void {
    let capacity = this.bytes.length * 2;
    while (capacity < needed) capacity *= 2;
    extendWithZeros(this.fd!, this.bytes.length, capacity);
    const ptr = this.libc.mmap(capacity, this.fd!);
    this.libc.munmap(this.ptr, this.bytes.length);
    this.ptr = ptr;
    this.bytes = Buffer.from(koffi.view(ptr, capacity));
  }
}

/** Writes zeros from `from` to `to`: the blocks exist before they are mapped (a full disk fails here). */
function extendWithZeros(fd: number, from: number, to: number): void {
  const zeros = Buffer.alloc(Math.min(to - from, 1 << 20));
  for (let at = from; at < to; ) {
    const n = writeSync(fd, zeros, 0, Math.min(zeros.length, to - at), at);
    if (n <= 0) throw new Error(`could not extend the journal to ${to} bytes`);
    at += n;
  }
}

// ---- write(2) ----

class WriteJournal implements Journal {
  readonly mode = "write";
  private fd: number | undefined;
  /** Bytes of whole records in the file: a failed append is cut back to it, so no torn line hides later ones. */
  private sizeBytes: number;
  /** A failed append could not be cut back: the next append cuts first. */
  private torn = false;

  constructor(
    readonly path: string,
    readonly fallbackReason: string | undefined,
  ) {
    this.fd = openSync(path, "a+");
    // Whole records only: a torn tail (and the zeros a mapped journal leaves) is cut, so that appends
    // never extend it into a line that does not parse.
    const text = readFileSync(this.path);
    let end = text.indexOf(0);
    if (end < 0) end = text.length;
    this.sizeBytes = wholeRecordsEnd(text, end);
    if (this.sizeBytes !== text.length) ftruncateSync(this.fd, this.sizeBytes);
  }

  read(): { records: unknown[]; badLines: number } {
    const buf = Buffer.alloc(this.sizeBytes);
    readSync(this.fd!, buf, 0, this.sizeBytes, 0);
    return parse(buf.toString("utf8"));
  }

  append(json: string): void {
    // A failed append left a torn line that could not be cut then: cut it first, or this record would
    // extend it into one line that does not parse (and be lost with it on replay).
    if (this.torn) {
      ftruncateSync(this.fd!, this.sizeBytes);
      this.torn = false;
    }
    const line = Buffer.from(`${json}\n`);
    let written = 0;
    try {
      // A short write (the disk filled up mid-record, or the file size limit) is followed by another for
      // the rest, which then fails with the reason (ENOSPC, EDQUOT, EFBIG): the caller sees the errno.
      while (written < line.length) {
        const n = writeSync(this.fd!, line, written, line.length - written);
        if (n <= 0) throw Object.assign(new Error(`write to ${this.path} wrote nothing`), { code: "EIO" });
        written += n;
      }
    } catch (err) {
      try {
        ftruncateSync(this.fd!, this.sizeBytes);
      } catch {
        this.torn = true;
      }
      throw err;
    }
    this.sizeBytes += written;
  }

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
