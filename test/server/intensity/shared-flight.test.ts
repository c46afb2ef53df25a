/**
 * Single flight across replicas, on SQLite (two stores on one file stand for two replicas; the same code
 * runs on PostgreSQL in test/e2e/replicas.test.ts).
 */
import test from "ava";
import { TtlCache } from "../../../server/intensity/cache.js";
import { SharedFlight, type SharedFlightOptions } from "../../../server/intensity/shared-flight.js";
import { SqliteStore } from "../../../server/intensity/store/sqlite.js";
import { ManualClock } from "../../../server/shared/clock.js";
import { silentLogger } from "../../../server/shared/log.js";
import { tempDataDir } from "../../helpers/grpc.js";

function replicas(t: import("ava").ExecutionContext, n: number, options: SharedFlightOptions = {}) {
  const data = tempDataDir();
  const clock = new ManualClock();
  const stores = Array.from({ length: n }, () => new SqliteStore(data.dir));
  t.teardown(async () => {
    await Promise.all(stores.map((s) => s.close()));
    data.cleanup();
  });
  const caches = stores.map((s) => new TtlCache(clock, 100, new SharedFlight(s, clock, silentLogger(), options)));
  return { clock, stores, caches };
}

/** A load that resolves when told, counting its calls. */
function gate<T>(value: T) {
  let calls = 0;
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { load: async () => (calls++, await opened, value), open: () => open(), calls: () => calls };
}

test("concurrent cold requests on every replica: one load, one answer for all; later requests are cache hits", async (t) => {
  const { caches, clock } = replicas(t, 3);
  const g = gate({ gPerKwh: 321 });
  const all = caches.flatMap((c) => Array.from({ length: 200 }, () => c.get("k", g.load, () => 60_000)));
  while (g.calls() === 0) await new Promise((r) => setImmediate(r));
  g.open();
  const results = await Promise.all(all);
  t.is(g.calls(), 1);
  t.true(results.every((r) => r.value.gPerKwh === 321));
  t.is(
    caches.reduce((n, c) => n + c.loads, 0),
    1,
  );
  const later = await caches[2]!.get("k", g.load, () => 60_000);
  t.true(later.cached);
  clock.advance(60_001);
  await caches[1]!.get(
    "k",
    async () => ({ gPerKwh: 1 }),
    () => 60_000,
  );
  t.is(caches[1]!.loads, 1, "expired everywhere: asked again");
});

test("the answer another replica stored is used until its expiry (the leader's TTL), without a load", async (t) => {
  const { caches, clock } = replicas(t, 2);
  await caches[0]!.get(
    "k",
    async () => "first",
    () => 10_000,
  );
  const other = await caches[1]!.get(
    "k",
    async () => "never",
    () => 99_999,
  );
  t.is(other.value, "first");
  t.true(other.cached, "another replica's answer is a cache hit");
  t.is(caches[1]!.loads, 0);
  clock.advance(10_000);
  t.is(
    (
      await caches[1]!.get(
        "k",
        async () => "second",
        () => 10_000,
      )
    ).value,
    "second",
  );
});

test("a failed load is not shared: the lease is released and a waiting replica asks itself", async (t) => {
  const { caches } = replicas(t, 2);
  const g = gate(undefined);
  const failing = caches[0]!.get(
    "k",
    async () => (await g.load(), Promise.reject(new Error("upstream down"))),
    () => 1000,
  );
  while (g.calls() === 0) await new Promise((r) => setImmediate(r));
  const waiting = caches[1]!.get(
    "k",
    async () => "from the second",
    () => 1000,
  );
  g.open();
  await t.throwsAsync(failing, { message: "upstream down" });
  t.is((await waiting).value, "from the second");
});

test("a leader that died (its lease no longer renewed) is replaced once the lease lapses", async (t) => {
  const { caches, stores } = replicas(t, 1, { leaseMs: 60_000 });
  t.true(await stores[0]!.tryLease("k", "a replica that died", 100));
  const r = await caches[0]!.get(
    "k",
    async () => "taken over",
    () => 1000,
  );
  t.is(r.value, "taken over");
  t.false(await stores[0]!.renewLease("k", "a replica that died", 100));
});

test("the wait for a slow leader is bounded: past maxWaitMs the replica asks upstream itself", async (t) => {
  const { caches, stores } = replicas(t, 1, { maxWaitMs: 50 });
  t.true(await stores[0]!.tryLease("k", "a slow replica", 600_000));
  t.is(
    (
      await caches[0]!.get(
        "k",
        async () => "asked itself",
        () => 1000,
      )
    ).value,
    "asked itself",
  );
});

test("a store that cannot be reached: the request is still answered, from upstream", async (t) => {
  const { caches, stores } = replicas(t, 1);
  await stores[0]!.close();
  t.is(
    (
      await caches[0]!.get(
        "k",
        async () => "direct",
        () => 1000,
      )
    ).value,
    "direct",
  );
});

test("an answer not to be kept (ttl 0) is not shared: the next replica asks itself", async (t) => {
  const { caches } = replicas(t, 2);
  t.is(
    (
      await caches[0]!.get(
        "k",
        async () => "incomplete",
        () => 0,
      )
    ).value,
    "incomplete",
  );
  t.is(
    (
      await caches[1]!.get(
        "k",
        async () => "complete",
        () => 1000,
      )
    ).value,
    "complete",
  );
  t.is(caches[1]!.loads, 1);
});

test("an answer stored between a replica's read and its lease take is used, not fetched again", async (t) => {
  const { stores, clock } = replicas(t, 1);
  const store = stores[0]!;
  // The race, made certain: the read finds nothing, then the holder stores and lets go before the take.
  const realRead = store.readAnswer.bind(store);
  let reads = 0;
  store.readAnswer = async (key, nowMs) => {
    if (reads++ === 0) {
      await store.writeAnswer(key, { json: '"from the holder"', expiresAtMs: clock.nowMs() + 1000 });
      return undefined;
    }
    return realRead(key, nowMs);
  };
  const cache = new TtlCache(clock, 100, new SharedFlight(store, clock, silentLogger()));
  const r = await cache.get(
    "k",
    async () => "fetched again",
    () => 1000,
  );
  t.is(r.value, "from the holder");
  t.is(cache.loads, 0);
  t.true(await store.tryLease("k", "someone else", 1000), "the lease was released");
});
