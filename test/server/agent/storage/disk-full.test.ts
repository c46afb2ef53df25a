/**
 * A full disk (issue 20, case 11), made real at the system call: the journal's write(2) gets EFBIG from the
 * process's file size limit (RLIMIT_FSIZE, set through libc's setrlimit; Node ignores SIGXFSZ, so the
 * write fails instead of killing the process), and SQLite gets SQLITE_FULL from PRAGMA max_page_count.
 * The limit is process-wide: ava runs each test file in its own process (workerThreads: false), and the
 * tests here that set it run serially.
 */
import { statSync } from "node:fs";
import { status, type ServiceError } from "@grpc/grpc-js";
import test from "ava";
import koffi from "koffi";
import {
  type BeginWindowRequest,
  type BeginWindowResponse,
  EnergyMonitorClient,
  type EndWindowRequest,
  type GetWindowRequest,
  type ListWindowsRequest,
  type ListWindowsResponse,
  Measurement,
} from "../../../../proto/gen/carbonmon/agent/v1/agent.js";
import { credentials } from "@grpc/grpc-js";
import { startAgent } from "../../../../server/agent/main.js";
import { DiskError, diskError } from "../../../../server/agent/storage/disk-episode.js";
import { openJournal } from "../../../../server/agent/storage/journal.js";
import { AgentStore } from "../../../../server/agent/storage/store.js";
import { loadAgentConfig } from "../../../../server/shared/config.js";
import { Code } from "../../../../server/shared/errors.js";
import { fakeNvml } from "../../../helpers/fake-nvml.js";
import { call, tempDataDir } from "../../../helpers/grpc.js";
import { intelTwoSocketTree } from "../../../helpers/powercap.js";
import { capturingLogger } from "../../../helpers/security.js";

const GPU_POWER_W = 300;
const RLIMIT_FSIZE = 1;
const ERROR = 50;

const libc = koffi.load("libc.so.6");
// Declares the struct type the prototypes below name.
koffi.struct("disk_full_rlimit", { cur: "uint64_t", max: "uint64_t" });
const setrlimit = libc.func("int setrlimit(int, const disk_full_rlimit *)") as (r: number, l: { cur: bigint; max: bigint }) => number;
const getrlimit = libc.func("int getrlimit(int, _Out_ disk_full_rlimit *)") as (r: number, l: { cur?: bigint; max?: bigint }) => number;

/** Sets this process's file size limit (soft; the hard limit stays): writes past `bytes` fail with EFBIG. */
function limitFileSize(bytes: bigint | "restore"): void {
  const now: { cur?: bigint; max?: bigint } = {};
  if (getrlimit(RLIMIT_FSIZE, now) !== 0) throw new Error("getrlimit failed");
  const cur = bytes === "restore" ? BigInt(now.max!) : bytes;
  if (setrlimit(RLIMIT_FSIZE, { cur, max: BigInt(now.max!) }) !== 0) throw new Error("setrlimit failed");
}

async function refused(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error("the call succeeded");
}

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return condition();
}

const request = (key: string): BeginWindowRequest => ({ key, gpuIndices: [], cpuIndices: [], labels: {}, skipGpus: false, skipCpus: true });

test.serial(
  "a full disk: BeginWindow and EndWindow say RESOURCE_EXHAUSTED with what to free, logged once; the open window ends whole once there is room",
  async (t) => {
    const nvml = fakeNvml({ gpus: [{ uuid: "GPU-0", profile: [{ powerW: GPU_POWER_W, ms: 1000 }] }] });
    const tree = intelTwoSocketTree();
    const data = tempDataDir();
    const { log, lines } = capturingLogger("info");
    const config = loadAgentConfig({
      env: {
        CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
        CARBONMON_DATA_DIR: data.dir,
        CARBONMON_NVML_LIBRARY: nvml.libraryPath,
        CARBONMON_POWERCAP_ROOT: tree.root,
        CARBONMON_AGENT_METRICS_LISTEN: "",
        CARBONMON_SAMPLING_PERIOD_MS: "50",
      },
    });
    const agent = await startAgent(config, log);
    const client = new EnergyMonitorClient(agent.running.address, credentials.createInsecure());
    t.teardown(async () => {
      limitFileSize("restore");
      client.close();
      await agent.running.shutdown(1000);
      data.cleanup();
      nvml.cleanup();
      tree.cleanup();
    });
    const begin = (key: string) => call<BeginWindowRequest, BeginWindowResponse>(client, client.beginWindow, request(key));
    const end = (key: string) => call<EndWindowRequest, Measurement>(client, client.endWindow, { key, waitForCounterUpdate: false });
    const get = (key: string) => call<GetWindowRequest, Measurement>(client, client.getWindow, { key });
    const list = () => call<ListWindowsRequest, ListWindowsResponse>(client, client.listWindows, { includeEnded: false });

    await begin("before");
    const before = await end("before");
    const kept = await begin("kept");
    const errorsBefore = lines.filter((l) => (l.level as number) >= ERROR).length;

    limitFileSize(1n); // every file of this process: the journal's next write(2) fails with EFBIG
    const failures: ServiceError[] = [];
    for (let i = 0; i < 20; i++) failures.push(await refused(begin(`during-${i}`)));
    for (let i = 0; i < 5; i++) failures.push(await refused(end("kept")));
    for (const err of failures) {
      t.is(err.code, status.RESOURCE_EXHAUSTED, err.details);
      t.true(err.details.includes(`the agent's data directory ${data.dir} has no room`), err.details);
      t.regex(err.details, /EFBIG: file too large/);
      t.regex(String(err.metadata.get("carbonmon-hint")[0]), /raise the agent's file size limit \(ulimit -f/);
      t.notRegex(err.details, /\n\s+at /); // no stack trace
    }
    t.regex(failures[0]!.details, /recording BeginWindow 'during-0' in agent\.journal failed/);
    t.regex(failures[24]!.details, /recording EndWindow 'kept' in agent\.journal failed/);
    // A Begin that failed left nothing open; the window whose End failed is still open, with its begin.
    t.deepEqual(
      (await list()).windows.map((w) => w.key),
      ["kept"],
    );
    t.is((await get("kept")).beginTime!.getTime(), kept.beginTime!.getTime());

    // Background writes fail too (the devices' checkpoint every 5 s, the WAL checkpoint): counted, not logged.
    const disk = (agent.context.windows as unknown as { deps: { store: AgentStore } }).deps.store.disk;
    t.true(await until(() => disk.failedWrites > failures.length), `${disk.failedWrites} failed writes, none in the background`);
    const errors = lines.filter((l) => (l.level as number) >= ERROR).slice(errorsBefore);
    t.is(errors.length, 1, JSON.stringify(errors));
    t.is(errors[0]!.dataDir, data.dir);
    t.truthy(errors[0]!.cause);
    t.false(lines.some((l) => String(l.msg).includes("unexpected error")));

    limitFileSize("restore"); // space freed
    const ended = await end("kept");
    t.true(ended.ended);
    t.is(ended.beginTime!.getTime(), kept.beginTime!.getTime());
    const energyJ = ended.gpuEnergyJ[0]!;
    const expectedJ = GPU_POWER_W * ended.timeS;
    t.true(Math.abs(energyJ - expectedJ) <= ended.gpuEnergyUncertaintyJ[0]! + 1e-6 * expectedJ, `${energyJ} J, expected ${expectedJ} J`);
    // Earlier windows are intact, and the ended one is stored (EndWindow again returns the same result).
    t.deepEqual(Measurement.toJSON(await get("before")), Measurement.toJSON(before));
    t.deepEqual(Measurement.toJSON(await end("kept")), Measurement.toJSON(ended));
    t.true(
      await until(() => lines.some((l) => /recovered after \d+ failed writes/.test(String(l.msg)))),
      "a recovered line once a kind of write that failed succeeds again",
    );
    const recovered = lines.find((l) => /recovered after/.test(String(l.msg)))!;
    t.true((recovered.failedWrites as number) >= failures.length);
    t.is(lines.filter((l) => (l.level as number) >= ERROR).length, errorsBefore + 1);
  },
);

test.serial(
  "SQLITE_FULL: journaled windows wait in the journal; reads that need them say RESOURCE_EXHAUSTED; one log line; nothing lost",
  (t) => {
    const data = tempDataDir();
    t.teardown(data.cleanup);
    const { log, lines } = capturingLogger("info");
    const store = new AgentStore(data.dir, Date.now(), { log, flushDelayMs: 3_600_000 });
    t.teardown(() => store.close());
    const spec = (key: string) => JSON.stringify({ key, filler: "x".repeat(20_000) });
    const first = store.insertOpen("first", 1, spec("first"));
    store.end(first, 2, new Uint8Array([1, 2, 3]));
    store.flush();
    const db = (store as unknown as { db: { pragma(s: string, o?: object): unknown } }).db;
    const pages = db.pragma("page_count", { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`); // the database cannot grow: the next page it needs is SQLITE_FULL

    for (let i = 0; i < 10; i++) {
      const id = store.insertOpen(`w${i}`, 10 + i, spec(`w${i}`)); // the journal still takes them
      store.end(id, 20 + i, new Uint8Array([i]));
    }
    const reads: unknown[] = [];
    for (let i = 0; i < 10; i++) {
      try {
        store.latestEnded("w3");
      } catch (err) {
        reads.push(err);
      }
    }
    t.is(reads.length, 10);
    for (const err of reads) {
      t.true(err instanceof DiskError);
      t.is((err as DiskError).code, Code.ResourceExhausted);
      t.regex(
        (err as DiskError).message,
        new RegExp(`data directory ${data.dir} has no room: moving agent.journal into agent.db failed \\(SQLITE_FULL`),
      );
      t.regex((err as DiskError).hint!, new RegExp(`free space on the filesystem holding ${data.dir}`));
    }
    t.is(lines.filter((l) => (l.level as number) >= ERROR).length, 1);
    t.false(lines.some((l) => /recovered/.test(String(l.msg))));

    db.pragma("max_page_count = 1073741823"); // space freed
    t.is(Buffer.from(store.latestEnded("w3")!.result as Uint8Array)[0], 3);
    t.deepEqual(
      store.recentlyEnded(100).map((w) => w.key),
      ["w9", "w8", "w7", "w6", "w5", "w4", "w3", "w2", "w1", "w0", "first"],
    );
    const recovered = lines.filter((l) => /recovered after 10 failed writes/.test(String(l.msg)));
    t.is(recovered.length, 1);
    t.is(lines.filter((l) => (l.level as number) >= ERROR).length, 1);
  },
);

test.serial("the journal: a record cut short by the file size limit fails with EFBIG and is cut back, so the next one parses", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const journal = openJournal(`${data.dir}/agent.journal`, { mode: "write" });
  t.teardown(() => journal.close());
  journal.append(JSON.stringify(["first"]));
  const size = statSync(`${data.dir}/agent.journal`).size;
  limitFileSize(BigInt(size + 10)); // the next record's first write is short (10 bytes), the second fails
  try {
    const err = t.throws(() => journal.append(JSON.stringify(["x".repeat(100)])));
    t.is((err as NodeJS.ErrnoException).code, "EFBIG");
    t.is(statSync(`${data.dir}/agent.journal`).size, size, "the torn record was cut back");
  } finally {
    limitFileSize("restore");
  }
  journal.append(JSON.stringify(["second"]));
  t.deepEqual(journal.read(), { records: [["first"], ["second"]], badLines: 0 });
});

test("disk failures map to statuses with the directory and what to do; other errors are not disk failures", (t) => {
  const dir = "/var/lib/carbonmon";
  const err = (code: string, message = code) => Object.assign(new Error(message), { code });
  const cases: Array<[string, Code, RegExp]> = [
    ["ENOSPC", Code.ResourceExhausted, /free space on the filesystem holding \/var\/lib\/carbonmon/],
    ["EDQUOT", Code.ResourceExhausted, /disk quota/],
    ["EFBIG", Code.ResourceExhausted, /ulimit -f/],
    ["SQLITE_FULL", Code.ResourceExhausted, /free space/],
    ["EIO", Code.Unavailable, /I\/O errors/],
    ["SQLITE_IOERR_WRITE", Code.Unavailable, /I\/O errors/],
    ["EROFS", Code.Unavailable, /read-only: remount it read-write/],
    ["SQLITE_READONLY", Code.Unavailable, /read-only/],
  ];
  for (const [code, expected, hint] of cases) {
    const mapped = diskError(err(code), dir, "recording BeginWindow 'k' in agent.journal");
    t.is(mapped?.code, expected, code);
    t.true(mapped!.message.includes(dir) && mapped!.message.includes(`(${code})`), mapped!.message);
    t.regex(mapped!.hint!, hint, code);
  }
  t.is(diskError(err("SQLITE_CONSTRAINT_UNIQUE"), dir, "x"), undefined);
  t.is(diskError(new TypeError("a bug"), dir, "x"), undefined);
});
