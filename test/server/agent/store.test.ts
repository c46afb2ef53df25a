import test from "ava";
import { AgentStore } from "../../../server/agent/store.js";
import { tempDataDir } from "../../helpers/grpc.js";

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
  s.end(first, 10, '{"key":"k"}');
  const second = s.insertOpen("k", 20, "{}");
  s.end(second, 30_000, '{"key":"k","timeS":2}');
  t.is(s.latestEnded("k")!.id, second);
  t.is(s.purgeEndedBefore(1000), 1, "only the window that ended before the cutoff");
  t.is(s.latestEnded("k")!.result, '{"key":"k","timeS":2}');
  s.cancel(s.insertOpen("gone", 40, "{}"));
  t.deepEqual(s.openWindows(), []);
});
