import test from "ava";
import { appendFileSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { decodeResult } from "../../../server/agent/result.js";
import { AgentStore } from "../../../server/agent/store.js";
import { tempDataDir } from "../../helpers/grpc.js";

/** The store keeps results as opaque bytes (result.ts encodes Measurements). */
const bytes = (text: string): Buffer => Buffer.from(text);

test("each open of the database is a new run; open windows and checkpoints survive it", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const a = new AgentStore(data.dir, 1000);
  const id = a.insertOpen("job", 1000, "{}");
  a.checkpoint([{ deviceId: "gpu:0", first: { tMs: 900, cumJ: 0, rawJ: 50 }, last: { tMs: 1500, cumJ: 40, rawJ: 90 } }]);
  a.close();
  const b = new AgentStore(data.dir, 2000);
  t.true(b.runId > a.runId);
  t.deepEqual(b.openWindows().map((w) => [w.id, w.key, w.runId]), [[id, "job", a.runId]]);
  t.deepEqual(b.runsSince("gpu:0", a.runId), [{ runId: a.runId, first: { tMs: 900, cumJ: 0, rawJ: 50 }, last: { tMs: 1500, cumJ: 40, rawJ: 90 } }]);
  b.close();
});

test("a key is unique among open windows only; ended windows are purged after the retention period", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const s = new AgentStore(data.dir, 0);
  t.teardown(() => s.close());
  const first = s.insertOpen("k", 0, "{}");
  t.throws(() => s.insertOpen("k", 1, "{}"), { message: /window 'k' is already open/ });
  s.end(first, 10, bytes('{"key":"k"}'));
  const second = s.insertOpen("k", 20, "{}");
  s.end(second, 30_000, bytes('{"key":"k","timeS":2}'));
  t.is(s.latestEnded("k")!.id, second);
  t.is(s.purgeEndedBefore(1000), 1, "only the window that ended before the cutoff");
  t.deepEqual(s.latestEnded("k")!.result, bytes('{"key":"k","timeS":2}'));
  s.cancel(s.insertOpen("gone", 40, "{}"));
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
  t.is(decodeResult(before.result!).key, "before", "results stored as JSON by older agents still read");
  t.is(before.segments, null);
  t.is(before.carbonTries, 0);
  t.deepEqual(s.carbonDue(1e15, 10), [], "old windows are not priced again");
  const id = s.insertOpen("new", 5, "{}");
  s.end(id, 6, bytes('{"key":"new"}'), "[]", 100);
  t.deepEqual(s.carbonDue(99, 10), []);
  t.deepEqual(s.carbonDue(100, 10).map((w) => w.key), ["new"]);
  s.setCarbon(id, bytes('{"key":"new","carbonStatus":"CARBON_STATUS_FINAL"}'), null);
  t.deepEqual(s.carbonDue(1e15, 10), []);
  t.is(s.latestEnded("new")!.carbonTries, 1);

  s.insertBoundaries([
    { deviceId: "gpu:0", tMs: 300_000, runId: s.runId, cumJ: 1 },
    { deviceId: "gpu:0", tMs: 600_000, runId: s.runId, cumJ: 2 },
    { deviceId: "cpu:0", tMs: 300_000, runId: s.runId, cumJ: 7 },
  ]);
  s.insertBoundaries([{ deviceId: "gpu:0", tMs: 300_000, runId: s.runId, cumJ: 99 }]);
  t.deepEqual(s.boundaries("gpu:0", 0, 1e9).map((b) => [b.tMs, b.cumJ]), [[300_000, 1], [600_000, 2]], "the first record of an instant stays");
  t.deepEqual(s.boundaries("gpu:0", 300_000, 600_000), [], "strictly inside the range");
  t.is(s.purgeBoundariesBefore(600_000), 2);
  t.deepEqual(s.boundaries("gpu:0", 0, 1e9).map((b) => b.tMs), [600_000]);
});

test("windows opened, ended and cancelled are journaled before the call returns: a killed agent's next open finds them", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  // A store that never moves its journal into SQLite stands for an agent killed before it did.
  const killed = new AgentStore(data.dir, 0, { flushDelayMs: 3_600_000 });
  const ended = killed.insertOpen("ended", 1, '{"n":1}');
  killed.end(ended, 5, bytes('{"key":"ended"}'), "[]", 99);
  const cancelled = killed.insertOpen("cancelled", 2, "{}");
  killed.cancel(cancelled);
  const open = killed.insertOpen("open", 3, '{"n":3}');
  t.true(statSync(join(data.dir, "agent.journal")).size > 0);

  const next = new AgentStore(data.dir, 10);
  t.teardown(() => next.close());
  t.deepEqual(next.openWindows().map((w) => [w.id, w.key, w.beginMs, w.runId, w.spec]), [[open, "open", 3, killed.runId, '{"n":3}']]);
  const e = next.latestEnded("ended")!;
  t.deepEqual([e.id, e.endMs, e.result, e.segments], [ended, 5, bytes('{"key":"ended"}'), "[]"]);
  t.deepEqual(next.carbonDue(99, 10).map((w) => w.key), ["ended"]);
  t.is(next.latestEnded("cancelled"), undefined);
  t.is(statSync(join(data.dir, "agent.journal")).size, 0, "replayed records leave the journal");
  t.throws(() => next.insertOpen("open", 11, "{}"), { message: /window 'open' is already open/ });
  t.true(next.insertOpen("later", 12, "{}") > open, "ids are never reused");
});

test("replaying a journal whose records already reached SQLite changes nothing; a torn last record is dropped", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const a = new AgentStore(data.dir, 0);
  const id = a.insertOpen("k", 1, "{}");
  a.end(id, 2, bytes('{"key":"k"}'));
  const reopened = a.insertOpen("k", 3, "{}");
  a.close();
  // Killed after the commit, before the journal was emptied: the same records again, and half of one more.
  const journal = join(data.dir, "agent.journal");
  appendFileSync(journal, `${JSON.stringify(["b", id, "k", 1, a.runId, "{}"])}\n${JSON.stringify(["e", id, 2, bytes('{"key":"k"}').toString("base64"), null, null])}\n`);
  appendFileSync(journal, `${JSON.stringify(["b", reopened, "k", 3, a.runId, "{}"])}\n["c", ${reopened}`);
  const b = new AgentStore(data.dir, 10);
  t.teardown(() => b.close());
  t.deepEqual(b.openWindows().map((w) => [w.id, w.key]), [[reopened, "k"]], "the torn cancel is not applied");
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
  const id = s.insertOpen("held", 1, "{}");
  await new Promise((r) => setTimeout(r, 100));
  t.true(errors.length > 0 && /locked|busy/i.test(String(errors[0])), String(errors[0]));
  t.true(statSync(join(data.dir, "agent.journal")).size > 0, "still journaled");
  db.exec("ROLLBACK");
  db.close();
  t.deepEqual(s.openWindows().map((w) => w.id), [id], "moved once the lock is gone");
  t.is(statSync(join(data.dir, "agent.journal")).size, 0);
  s.close();
});
