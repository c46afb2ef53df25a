import test from "ava";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import Database from "better-sqlite3";
import { measurementCodec } from "../../../../server/agent/api/measurement-codec.js";
import fc from "fast-check";
import { binaryString } from "../../../helpers/arbitraries.js";
import { RECORD_VERSION } from "../../../../server/agent/storage/records.js";
import { AgentStore, endRecordJson } from "../../../../server/agent/storage/store.js";
import { type AppError, Code } from "../../../../server/shared/errors.js";
import { tempDataDir } from "../../../helpers/grpc.js";

const STORE_MODULE = fileURLToPath(new URL("../../../../server/agent/storage/store.ts", import.meta.url));

/** The journal's records as text: up to the first NUL (a mapped journal is zero past its records). */
const journalText = (dir: string): string => {
  const file = readFileSync(join(dir, "agent.journal"));
  const end = file.indexOf(0);
  return file.subarray(0, end < 0 ? file.length : end).toString("utf8");
};

/** A window spec as the manager writes it (storage/records.ts: version 1). */
const spec = (key: string, beginMs = 0): string =>
  JSON.stringify({ v: RECORD_VERSION, key, beginMs, labels: {}, devices: [], skipped: [], skipGpus: false, skipCpus: false });
/** The same spec as agents wrote it before records carried a version (version 0), as it sits inside a journal line. */
const specV0 = (key: string, beginMs = 0) => ({ key, beginMs, labels: {}, devices: [], skipped: [], skipGpus: false, skipCpus: false });

/** The store keeps results as opaque bytes (measurement-codec.ts encodes Measurements). */
const bytes = (text: string): Buffer => Buffer.from(text);

test("each open of the database is a new run; open windows and checkpoints survive it", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const a = new AgentStore(data.dir, 1000);
  const id = a.insertOpen("job", 1000, spec("job", 1000));
  a.checkpoint([{ deviceId: "gpu:0", first: { tMs: 900, cumJ: 0, rawJ: 50 }, last: { tMs: 1500, cumJ: 40, rawJ: 90 } }]);
  a.close();
  const b = new AgentStore(data.dir, 2000);
  t.true(b.runId > a.runId);
  t.deepEqual(
    b.openWindows().map((w) => [w.id, w.key, w.runId]),
    [[id, "job", a.runId]],
  );
  t.deepEqual(b.runsSince("gpu:0", a.runId), [
    { runId: a.runId, first: { tMs: 900, cumJ: 0, rawJ: 50 }, last: { tMs: 1500, cumJ: 40, rawJ: 90 } },
  ]);
  b.close();
});

test("a key is unique among open windows only; ended windows are purged after the retention period", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const s = new AgentStore(data.dir, 0);
  t.teardown(() => s.close());
  const first = s.insertOpen("k", 0, spec("k", 0));
  t.throws(() => s.insertOpen("k", 1, spec("k", 1)), { message: /window 'k' is already open/ });
  s.end(first, 10, bytes('{"key":"k"}'));
  const second = s.insertOpen("k", 20, spec("k", 20));
  s.end(second, 30_000, bytes('{"key":"k","timeS":2}'));
  t.is(s.latestEnded("k")!.id, second);
  t.is(s.purgeEndedBefore(1000), 1, "only the window that ended before the cutoff");
  t.deepEqual(s.latestEnded("k")!.result, bytes('{"key":"k","timeS":2}'));
  s.cancel(s.insertOpen("gone", 40, spec("gone", 40)));
  t.deepEqual(s.openWindows(), []);
});

test("a database from before the carbon columns is upgraded in place; the boundary log is kept by device and time", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const old = new Database(join(data.dir, "agent.db"));
  old.exec(`CREATE TABLE windows (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, state TEXT NOT NULL, begin_ms REAL NOT NULL,
    end_ms REAL, run_id INTEGER NOT NULL, spec TEXT NOT NULL, edges TEXT, result TEXT);
    INSERT INTO windows (key, state, begin_ms, end_ms, run_id, spec, result) VALUES ('before', 'ended', 1, 2, 1, '{}', '{"key":"before"}');`);
  old.close();
  const s = new AgentStore(data.dir, 10);
  t.teardown(() => s.close());
  const before = s.latestEnded("before")!;
  t.is(measurementCodec.decode(before.result!).key, "before", "results stored as JSON by older agents still read");
  t.is(before.segments, null);
  t.is(before.carbonTries, 0);
  t.deepEqual(s.carbonDue(1e15, 10), [], "old windows are not priced again");
  const id = s.insertOpen("new", 5, spec("new", 5));
  s.end(id, 6, bytes('{"key":"new"}'), "[]", 100);
  t.deepEqual(s.carbonDue(99, 10), []);
  t.deepEqual(
    s.carbonDue(100, 10).map((w) => w.key),
    ["new"],
  );
  s.setCarbon(id, bytes('{"key":"new","carbonStatus":"CARBON_STATUS_FINAL"}'), null);
  t.deepEqual(s.carbonDue(1e15, 10), []);
  t.is(s.latestEnded("new")!.carbonTries, 1);

  s.insertBoundaries([
    { deviceId: "gpu:0", tMs: 300_000, runId: s.runId, cumJ: 1 },
    { deviceId: "gpu:0", tMs: 600_000, runId: s.runId, cumJ: 2 },
    { deviceId: "cpu:0", tMs: 300_000, runId: s.runId, cumJ: 7 },
  ]);
  s.insertBoundaries([{ deviceId: "gpu:0", tMs: 300_000, runId: s.runId, cumJ: 99 }]);
  t.deepEqual(
    s.boundaries("gpu:0", 0, 1e9).map((b) => [b.tMs, b.cumJ]),
    [
      [300_000, 1],
      [600_000, 2],
    ],
    "the first record of an instant stays",
  );
  t.deepEqual(s.boundaries("gpu:0", 300_000, 600_000), [], "strictly inside the range");
  t.is(s.purgeBoundariesBefore(600_000), 2);
  t.deepEqual(
    s.boundaries("gpu:0", 0, 1e9).map((b) => b.tMs),
    [600_000],
  );
});

/** Runs `body` against an AgentStore in a child process that then kills itself (SIGKILL): nothing is flushed or closed. */
function inKilledProcess(
  dir: string,
  body: string,
  mode?: "mapped" | "write",
): { runId: number; ids: Record<string, number>; mode: string } {
  const code = `
    const { AgentStore } = await import(${JSON.stringify(STORE_MODULE)});
    const bytes = (text) => Buffer.from(text);
    const store = new AgentStore(${JSON.stringify(dir)}, 0, { flushDelayMs: 3_600_000, journal: ${JSON.stringify(mode ? { mode } : {})} });
    const ids = {};
    ${body}
    process.stdout.write(JSON.stringify({ runId: store.runId, ids, mode: store.journalMode.mode }), () => process.kill(process.pid, "SIGKILL"));`;
  const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { encoding: "utf8" });
  if (child.signal !== "SIGKILL") throw new Error(`the child did not die by SIGKILL (${child.status}): ${child.stderr}`);
  return JSON.parse(child.stdout) as { runId: number; ids: Record<string, number>; mode: string };
}

for (const mode of ["mapped", "write"] as const) {
  test(`windows opened, ended and cancelled are journaled before the call returns: the next open after SIGKILL finds them (${mode} journal)`, (t) => {
    const data = tempDataDir();
    t.teardown(data.cleanup);
    // The child's store never moves its journal into SQLite (an hour's delay) and is killed, as an agent would be.
    const killed = inKilledProcess(
      data.dir,
      `ids.ended = store.insertOpen("ended", 1, ${JSON.stringify(spec("ended", 1))});
      store.end(ids.ended, 5, bytes('{"key":"ended"}'), "[]", 99);
      ids.cancelled = store.insertOpen("cancelled", 2, ${JSON.stringify(spec("cancelled", 2))});
      store.cancel(ids.cancelled);
      ids.open = store.insertOpen("open", 3, ${JSON.stringify(spec("open", 3))});`,
      mode,
    );
    t.is(killed.mode, mode, "the journal appended as asked (mapped: Linux, as here)");
    t.is(journalText(data.dir).split("\n").length - 1, 5, "five records: begin, end, begin, cancel, begin");

    const next = new AgentStore(data.dir, 10);
    t.teardown(() => next.close());
    t.deepEqual(
      next.openWindows().map((w) => [w.id, w.key, w.beginMs, w.runId, w.spec]),
      [[killed.ids.open, "open", 3, killed.runId, spec("open", 3)]],
    );
    const e = next.latestEnded("ended")!;
    t.deepEqual([e.id, e.endMs, e.result, e.segments], [killed.ids.ended, 5, bytes('{"key":"ended"}'), "[]"]);
    t.deepEqual(
      next.carbonDue(99, 10).map((w) => w.key),
      ["ended"],
    );
    t.is(next.latestEnded("cancelled"), undefined);
    t.is(journalText(data.dir), "", "replayed records leave the journal");
    t.throws(() => next.insertOpen("open", 11, spec("open", 11)), { message: /window 'open' is already open/ });
    t.true(next.insertOpen("later", 12, spec("later", 12)) > killed.ids.open!, "ids are never reused");
  });
}

test("one agent per data directory: a second store is refused while the first is open, and the lock dies with its process", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const first = new AgentStore(data.dir, 0);
  const refused = t.throws(() => new AgentStore(data.dir, 1)) as AppError;
  t.is(refused.code, Code.FailedPrecondition);
  t.regex(refused.message, /another carbonmon agent is using the data directory/);
  t.regex(refused.hint ?? "", /CARBONMON_DATA_DIR/);
  first.close();
  const second = new AgentStore(data.dir, 2); // closed: free again
  second.close();
  inKilledProcess(data.dir, `ids.k = store.insertOpen("k", 1, ${JSON.stringify(spec("k", 1))});`);
  const afterKill = new AgentStore(data.dir, 3); // SIGKILL: the kernel dropped the lock
  t.teardown(() => afterKill.close());
  t.deepEqual(
    afterKill.openWindows().map((w) => w.key),
    ["k"],
  );
});

test("a journal with an unreadable line in the middle: the readable records are replayed and the file is kept aside", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const a = new AgentStore(data.dir, 0);
  a.close();
  const journal = join(data.dir, "agent.journal");
  writeFileSync(
    journal,
    `${JSON.stringify(["b", 7, "before", 1, a.runId, specV0("before", 1)])}\n{garbage\n${JSON.stringify(["b", 8, "after", 2, a.runId, specV0("after", 2)])}\n`,
  );
  const problems: string[] = [];
  const b = new AgentStore(data.dir, 10, { onJournalDamaged: (m) => problems.push(m) });
  t.teardown(() => b.close());
  t.deepEqual(
    b.openWindows().map((w) => w.key),
    ["before", "after"],
  );
  t.is(problems.length, 1);
  t.regex(problems[0]!, /1 unreadable line\(s\).*2 record\(s\) replayed and 0 refused.*agent\.journal\.damaged-10/);
  t.true(readFileSync(join(data.dir, "agent.journal.damaged-10"), "utf8").includes("{garbage"));
});

test("a journaled window the database refuses (its key open under another id) is reported, and the agent still opens", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const a = new AgentStore(data.dir, 0);
  const id = a.insertOpen("k", 1, spec("k", 1));
  a.close();
  writeFileSync(
    join(data.dir, "agent.journal"),
    `${JSON.stringify(["b", id + 5, "k", 2, a.runId, specV0("k", 2)])}\n${JSON.stringify(["b", id + 6, "other", 3, a.runId, specV0("other", 3)])}\n`,
  );
  const problems: string[] = [];
  const b = new AgentStore(data.dir, 20, { onJournalDamaged: (m) => problems.push(m) });
  t.teardown(() => b.close());
  t.deepEqual(
    b.openWindows().map((w) => [w.id, w.key]),
    [
      [id, "k"],
      [id + 6, "other"],
    ],
  );
  t.regex(
    problems[0] ?? "",
    /0 unreadable line\(s\).*1 record\(s\) replayed and 1 refused by the database \(refused: .*UNIQUE constraint failed/,
  );
});

test("replaying a journal whose records already reached SQLite changes nothing; a torn last record is dropped", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const a = new AgentStore(data.dir, 0);
  const id = a.insertOpen("k", 1, spec("k", 1));
  a.end(id, 2, bytes('{"key":"k"}'));
  const reopened = a.insertOpen("k", 3, spec("k", 3));
  a.close();
  // Killed after the commit, before the journal was emptied: the same records again, and half of one more.
  const journal = join(data.dir, "agent.journal");
  writeFileSync(
    journal,
    `${JSON.stringify(["b", id, "k", 1, a.runId, specV0("k", 1)])}\n${JSON.stringify(["e", id, 2, bytes('{"key":"k"}').toString("base64"), null, null])}\n` +
      `${JSON.stringify(["b", reopened, "k", 3, a.runId, specV0("k", 3)])}\n["c", ${reopened}`,
  );
  const b = new AgentStore(data.dir, 10);
  t.teardown(() => b.close());
  t.deepEqual(
    b.openWindows().map((w) => [w.id, w.key]),
    [[reopened, "k"]],
    "the torn cancel is not applied",
  );
  t.is(b.latestEnded("k")!.id, id);
  t.is(b.recentlyEnded(10).length, 1);
});

test("a journal that cannot be moved into SQLite keeps its records and reports why", async (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const errors: unknown[] = [];
  const s = new AgentStore(data.dir, 0, { flushDelayMs: 5, onFlushError: (err) => errors.push(err) });
  const db = new Database(s.path);
  db.exec("BEGIN IMMEDIATE"); // another writer holds the lock: SQLite answers SQLITE_BUSY
  const id = s.insertOpen("held", 1, spec("held", 1));
  await new Promise((r) => setTimeout(r, 100));
  t.true(errors.length > 0 && /locked|busy/i.test(String(errors[0])), String(errors[0]));
  t.regex(journalText(data.dir), /"held"/, "still journaled");
  db.exec("ROLLBACK");
  db.close();
  t.deepEqual(
    s.openWindows().map((w) => w.id),
    [id],
    "moved once the lock is gone",
  );
  t.is(journalText(data.dir), "");
  s.close();
});

test("an end record's journal line is exactly JSON.stringify of the record and its version", (t) => {
  fc.assert(
    fc.property(
      fc.nat(),
      fc.double(),
      fc.uint8Array({ maxLength: 2000 }),
      fc.option(binaryString()),
      fc.option(fc.double()),
      (id, endMs, result, segments, carbonNextMs) => {
        const record = ["e", id, endMs, Buffer.from(result).toString("base64"), segments, carbonNextMs] as const;
        return endRecordJson([...record]) === JSON.stringify([...record, RECORD_VERSION]);
      },
    ),
  );
  t.pass();
});
