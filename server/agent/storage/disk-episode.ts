/**
 * Disk failures of the agent's data directory (a full disk, a quota, a file size limit, I/O errors, a
 * read-only remount): what callers are told, and what is logged. A full disk fails every write until
 * someone frees space, so logging each failure (every RPC, every flush retry, every checkpoint) floods the
 * log with the same stack trace while saying nothing new. Failures are grouped into episodes instead: the
 * first failure logs one error line (the directory, what failed, the cause), later ones are only counted,
 * and the first successful write of everything that had failed logs one "recovered after N failed writes".
 *
 * Callers get a DiskError: RESOURCE_EXHAUSTED when space is missing (ENOSPC, EDQUOT, EFBIG, SQLITE_FULL),
 * UNAVAILABLE when the filesystem fails or refuses writes (EIO, EROFS, SQLITE_IOERR*, SQLITE_READONLY*),
 * each naming the directory and what to do; never a stack trace.
 */
import { AppError, Code } from "../../shared/errors.js";
import type { Logger } from "../../shared/log.js";

/** Space is missing: what to free or raise. */
const NO_SPACE: Record<string, (dir: string) => string> = {
  ENOSPC: (dir) => `free space on the filesystem holding ${dir}`,
  SQLITE_FULL: (dir) => `free space on the filesystem holding ${dir}`,
  EDQUOT: (dir) => `free space within the disk quota of the agent's user on ${dir}, or raise that quota`,
  EFBIG: (dir) =>
    `raise the agent's file size limit (ulimit -f; systemd LimitFSIZE=), or free space on the filesystem holding ${dir} if it is full`,
};

/** The filesystem fails or refuses writes: what to check. */
const READ_ONLY = (dir: string) =>
  `the filesystem holding ${dir} is read-only: remount it read-write, or point CARBONMON_DATA_DIR at a writable directory`;
const IO_ERROR = (dir: string) =>
  `the filesystem holding ${dir} reports I/O errors (see the kernel log, dmesg): repair it, or point CARBONMON_DATA_DIR elsewhere`;

const RETRY = "then retry: open windows keep measuring, and EndWindow returns the whole window once it can be stored";

/** An error of the data directory's storage; already counted by the episode that made it (not to be logged again). */
export class DiskError extends AppError {
  constructor(
    code: Code,
    message: string,
    readonly causeText: string,
    hint: string,
    cause: unknown,
  ) {
    super(code, message, { hint, cause });
    this.name = "DiskError";
  }
}

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}

/**
 * The caller's error for a storage failure, or undefined when it is not one of the disk's (a bug, a
 * constraint: left to the caller's usual handling). `action` says what failed, e.g. "recording EndWindow in agent.journal".
 */
export function diskError(err: unknown, dataDir: string, action: string): DiskError | undefined {
  if (err instanceof DiskError) return err;
  const code = codeOf(err);
  const text = err instanceof Error ? err.message : String(err);
  // Node's fs messages start with the errno's name ("ENOSPC: no space left on device, write"); SQLite's do not.
  const cause = (code === "" || text.startsWith(code) ? text : `${code}: ${text}`).slice(0, 200);
  const base = code.startsWith("SQLITE_FULL") ? "SQLITE_FULL" : code;
  const noSpace = NO_SPACE[base];
  if (noSpace) {
    return new DiskError(
      Code.ResourceExhausted,
      `the agent's data directory ${dataDir} has no room: ${action} failed (${cause})`,
      cause,
      `${noSpace(dataDir)}; ${RETRY}`,
      err,
    );
  }
  let hint: string | undefined;
  if (code === "EROFS" || code.startsWith("SQLITE_READONLY")) hint = READ_ONLY(dataDir);
  else if (code === "EIO" || code.startsWith("SQLITE_IOERR")) hint = IO_ERROR(dataDir);
  if (hint === undefined) return undefined;
  return new DiskError(
    Code.Unavailable,
    `the agent's data directory ${dataDir} cannot be written: ${action} failed (${cause})`,
    cause,
    `${hint}; ${RETRY}`,
    err,
  );
}

/** One episode of disk failures at a time: logged once when it starts, once when everything written again succeeds. */
export class DiskEpisode {
  /** What has failed in this episode and not succeeded since (the journal, the database, the WAL checkpoint). */
  private readonly failing = new Set<string>();
  private failures = 0;

  constructor(
    readonly dataDir: string,
    private readonly log: Logger,
  ) {}

  /** Writes failed in the current episode (0: none is going on). */
  get failedWrites(): number {
    return this.failures;
  }

  /**
   * A write to `target` failed: returns the DiskError to throw (counted, and logged if it opens an episode),
   * or `err` itself when it is not a disk failure.
   */
  failed(target: string, err: unknown, action: string): unknown {
    const disk = diskError(err, this.dataDir, action);
    if (!disk) return err;
    if (this.failures === 0) {
      this.log.error(
        { dataDir: this.dataDir, target, cause: disk.causeText, status: disk.code },
        `${disk.message}; further failures are counted until a write succeeds (${disk.hint})`,
      );
    }
    this.failures++;
    this.failing.add(target);
    return disk;
  }

  /**
   * A write to `target` succeeded. The episode ends when a kind of write that failed in it and needs room
   * succeeds again: that shows the directory takes writes. Waiting for every kind that failed could wait
   * forever (a kind may never be tried again: the begin edges of a window ended meanwhile); a write that
   * frees room (`freesRoom`: a truncation, a purge) may succeed on a full disk and ends nothing.
   */
  succeeded(target: string, freesRoom = false): void {
    if (this.failures === 0 || !this.failing.has(target)) return;
    this.failing.delete(target);
    if (freesRoom) return;
    this.failing.clear();
    this.log.info(
      { dataDir: this.dataDir, failedWrites: this.failures },
      `writes to ${this.dataDir} recovered after ${this.failures} failed writes`,
    );
    this.failures = 0;
  }
}
