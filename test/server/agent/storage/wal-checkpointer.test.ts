import { statSync } from "node:fs";
import test from "ava";
import { AgentStore } from "../../../../server/agent/storage/store.js";
import { WalCheckpointer } from "../../../../server/agent/storage/wal-checkpointer.js";
import { silentLogger } from "../../../../server/shared/log.js";
import { tempDataDir } from "../../../helpers/grpc.js";

test("a worker thread moves the write-ahead log into agent.db while the main connection keeps writing", async (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const store = new AgentStore(data.dir, 0);
  t.teardown(() => store.close());
  const big = JSON.stringify({ filler: "x".repeat(2000) });
  for (let i = 0; i < 500; i++) store.end(store.insertOpen(`w${i}`, i, big), i + 1, Buffer.from(big));
  store.flush(); // from the journal into SQLite's WAL
  const before = statSync(store.path).size;
  t.true(statSync(`${store.path}-wal`).size > 1_000_000, "the rows are in the WAL");
  const checkpointer = new WalCheckpointer(store.path, {
    everyMs: 20,
    changes: () => store.totalChanges,
    changesPerCheckpoint: 1,
    log: silentLogger(),
  });
  let during = 0;
  for (; during < 100 && statSync(store.path).size <= before + 1_000_000; during++) {
    store.insertOpen(`during${during}`, during, "{}"); // writers are not blocked meanwhile
    await new Promise((r) => setTimeout(r, 20));
  }
  t.true(statSync(store.path).size > before + 1_000_000, `agent.db grew from ${before} bytes`);
  await checkpointer.stop();
  t.deepEqual(store.latestEnded("w499")!.result, Buffer.from(big), "nothing lost");
  t.is(store.openWindows().length, during);
});

test("if the checkpointer thread dies, SQLite checkpoints on the main connection: the log still reaches agent.db", async (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const store = new AgentStore(data.dir, 0);
  t.teardown(() => store.close());
  t.is(store.walAutocheckpointPages, 0, "a worker checkpoints; the main connection does not");
  let fellBack = 0;
  const checkpointer = new WalCheckpointer(store.path, {
    everyMs: 60_000,
    changes: () => store.totalChanges,
    log: silentLogger(),
    onDied: () => (fellBack++, store.useAutocheckpoint()),
  });
  t.teardown(() => checkpointer.stop());
  checkpointer.checkpointNow();
  // The thread dies (as from a crash): terminated from outside.
  await (checkpointer as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
  for (let i = 0; i < 500 && !checkpointer.fallenBack; i++) await new Promise((r) => setTimeout(r, 10)); // a condition, not a delay
  t.true(checkpointer.fallenBack);
  t.is(fellBack, 1);
  t.is(store.walAutocheckpointPages, 1000);
  const before = statSync(store.path).size;
  const big = JSON.stringify({ filler: "x".repeat(2000) });
  for (let i = 0; i < 1500; i++) store.end(store.insertOpen(`w${i}`, i, big), i + 1, Buffer.from(big));
  store.flush();
  t.true(statSync(store.path).size > before + 1_000_000, "checkpointed on the main connection: agent.db grew");
});

test("the thread runs only while there is work: none while idle, one once enough rows changed, gone after its idle time", async (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const store = new AgentStore(data.dir, 0);
  t.teardown(() => store.close());
  let fellBack = 0;
  const checkpointer = new WalCheckpointer(store.path, {
    everyMs: 10,
    changes: () => store.totalChanges,
    changesPerCheckpoint: 100,
    idleExitMs: 50,
    log: silentLogger(),
    onDied: () => fellBack++,
  });
  t.teardown(() => checkpointer.stop());
  const until = async (what: () => boolean) => {
    for (let i = 0; i < 1000 && !what(); i++) await new Promise((r) => setTimeout(r, 10)); // a condition, not a delay
  };
  for (let i = 0; i < 20; i++) store.insertOpen(`few${i}`, i, "{}");
  store.flush();
  // Fewer changes than a checkpoint needs: several looks later, still no thread.
  const looks = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 10));
  };
  await looks(5);
  t.is(checkpointer.started, 0, "an idle agent runs no checkpointer thread");
  const big = JSON.stringify({ filler: "x".repeat(2000) });
  for (let i = 0; i < 300; i++) store.end(store.insertOpen(`w${i}`, i, big), i + 1, Buffer.from(big));
  store.flush();
  const before = statSync(store.path).size;
  await until(() => statSync(store.path).size > before + 500_000);
  t.is(checkpointer.started, 1, "one thread started for the work");
  t.true(statSync(store.path).size > before + 500_000, "and it checkpointed: agent.db grew");
  await until(() => !checkpointer.running);
  t.false(checkpointer.running, "the thread ended once idle");
  t.false(checkpointer.fallenBack, "an idle exit is not a death");
  t.is(fellBack, 0);
  for (let i = 0; i < 300; i++) store.end(store.insertOpen(`again${i}`, i, big), i + 1, Buffer.from(big));
  store.flush();
  await until(() => checkpointer.started === 2);
  t.is(checkpointer.started, 2, "more work: a thread again");
});
