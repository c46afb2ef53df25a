/**
 * The one behaviour both intensity stores must have, run against SQLite in the unit tier
 * (sqlite.test.ts) and against a real PostgreSQL in the e2e tier (test/e2e/postgres-store.test.ts).
 */
import type { ExecutionContext, TestFn } from "ava";
import type { Point } from "../../../../server/intensity/core/point.js";
import type { IntensityStore } from "../../../../server/intensity/store/store.js";

export interface StoreFactory {
  /** A store on a fresh, empty database. */
  fresh(): Promise<IntensityStore>;
  /** Another store on the database of `store` (another replica, or a restart). */
  sameDatabase(store: IntensityStore): Promise<IntensityStore>;
}

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 11, 1, 0, 0, 0);

function point(over: Partial<Point> = {}): Point {
  return {
    zone: "DE",
    gPerKwh: 300,
    validFromMs: T0,
    validToMs: T0 + HOUR,
    isEstimated: false,
    provider: "electricitymaps",
    signal: "average",
    emissionFactor: "lifecycle",
    source: "live",
    fetchedAtMs: T0 + 2 * HOUR,
    ...over,
  };
}

const estimate = (gPerKwh: number, over: Partial<Point> = {}) =>
  point({ gPerKwh, isEstimated: true, estimationMethod: "TIME_SLICER_AVERAGE", ...over });
const measured = (gPerKwh: number, over: Partial<Point> = {}) => point({ gPerKwh, ...over });

/** Registers the suite's tests, each title prefixed with `name`. */
export function storeSuite(test: TestFn, name: string, factory: StoreFactory): void {
  const open = async (t: ExecutionContext) => {
    const store = await factory.fresh();
    t.teardown(() => store.close());
    return store;
  };
  const range = (s: IntensityStore, from = T0 - 10 * HOUR, to = T0 + 10 * HOUR) => s.range("electricitymaps", "DE", "lifecycle", from, to);

  test(`${name}: points round-trip with their provenance; forecasts are not kept; range selects by overlap`, async (t) => {
    const s = await open(t);
    const a = point({ sourceUpdatedAtMs: T0 + HOUR + 5, estimationMethod: undefined });
    const b = estimate(280, { validFromMs: T0 + HOUR, validToMs: T0 + 2 * HOUR });
    const f = point({ validFromMs: T0 + 2 * HOUR, validToMs: T0 + 3 * HOUR, source: "forecast" });
    const other = point({ zone: "FR" });
    await s.save([b, a, f, other]);
    const { estimationMethod: _none, ...aPlain } = a;
    t.deepEqual(await range(s), [aPlain, b]);
    t.deepEqual(await range(s, T0 + HOUR, T0 + 2 * HOUR), [b], "[from, to) overlap: a ends where the range begins");
    t.deepEqual(await s.range("electricitymaps", "DE", "direct", T0 - HOUR, T0 + HOUR), [], "another emission factor is another series");
    t.deepEqual(await s.range("electricitymaps", "FR", "lifecycle", T0, T0 + HOUR), [other]);
  });

  test(`${name}: a measured value replaces an estimate; an estimate never replaces a measured value`, async (t) => {
    const s = await open(t);
    await s.save([estimate(250)]);
    await s.save([estimate(260)]);
    t.is((await range(s))[0]!.gPerKwh, 260, "a newer estimate replaces an estimate");
    await s.save([measured(300)]);
    t.like((await range(s))[0], { gPerKwh: 300, isEstimated: false });
    t.is((await range(s))[0]!.estimationMethod, undefined, "the estimate's method goes with it");
    await s.save([estimate(999)]);
    t.like((await range(s))[0], { gPerKwh: 300, isEstimated: false }, "the estimate is ignored");
    await s.save([measured(305)]);
    t.is((await range(s))[0]!.gPerKwh, 305, "a revised measurement replaces the measurement");
    // Both in one batch, in either order: the measurement stays.
    await s.save([
      measured(310, { validFromMs: T0 + HOUR, validToMs: T0 + 2 * HOUR }),
      estimate(1, { validFromMs: T0 + HOUR, validToMs: T0 + 2 * HOUR }),
    ]);
    await s.save([
      estimate(2, { validFromMs: T0 + 2 * HOUR, validToMs: T0 + 3 * HOUR }),
      measured(320, { validFromMs: T0 + 2 * HOUR, validToMs: T0 + 3 * HOUR }),
    ]);
    t.deepEqual(
      (await range(s)).map((p) => [p.gPerKwh, p.isEstimated]),
      [
        [305, false],
        [310, false],
        [320, false],
      ],
    );
  });

  test(`${name}: concurrent writers on one database (replicas): a measured value always ends up stored`, async (t) => {
    const a = await open(t);
    const b = await factory.sameDatabase(a);
    t.teardown(() => b.close());
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      const slot = { validFromMs: T0 + (i % 8) * HOUR, validToMs: T0 + ((i % 8) + 1) * HOUR };
      writes.push((i % 2 ? a : b).save([estimate(100 + i, slot)]));
      if (i % 5 === 0) writes.push((i % 2 ? b : a).save([measured(500 + (i % 8), slot)]));
    }
    await Promise.all(writes);
    await Promise.all([
      a.save([estimate(1, { validFromMs: T0 + 5 * HOUR, validToMs: T0 + 6 * HOUR })]),
      b.save([estimate(2, { validFromMs: T0 + 5 * HOUR, validToMs: T0 + 6 * HOUR })]),
    ]);
    const stored = await range(b, T0, T0 + 8 * HOUR);
    t.is(stored.length, 8);
    // Slots 0 and 5 got a measured value (i = 0, 5, 10, 15, … → i % 8 ∈ {0, 5, 2, 7, 4, 1, 6, 3}): all of them.
    for (const p of stored) t.false(p.isEstimated, `slot ${(p.validFromMs - T0) / HOUR} kept its measured value`);
  });

  test(`${name}: a shared answer is read until it expires, and pruned after`, async (t) => {
    const a = await open(t);
    const b = await factory.sameDatabase(a);
    t.teardown(() => b.close());
    t.is(await b.readAnswer("current|DE", T0), undefined);
    await a.writeAnswer("current|DE", { json: '{"v":1}', expiresAtMs: T0 + 1000 });
    t.deepEqual(await b.readAnswer("current|DE", T0 + 999), { json: '{"v":1}', expiresAtMs: T0 + 1000 });
    t.is(await b.readAnswer("current|DE", T0 + 1000), undefined, "expired at its expiry");
    await b.writeAnswer("current|DE", { json: '{"v":2}', expiresAtMs: T0 + 5000 });
    t.is((await a.readAnswer("current|DE", T0 + 1000))?.json, '{"v":2}', "a newer answer replaces it");
    await a.writeAnswer("old", { json: "1", expiresAtMs: T0 });
    await a.pruneAnswers(T0 + 1);
    t.is(await a.readAnswer("old", 0), undefined, "pruned, even for a reader whose clock is behind");
    t.truthy(await a.readAnswer("current|DE", T0 + 1000), "unexpired answers stay");
  });

  test(`${name}: one lease holder per key; renewals; a released or lapsed lease is taken by the next`, async (t) => {
    const a = await open(t);
    const b = await factory.sameDatabase(a);
    t.teardown(() => b.close());
    t.true(await a.tryLease("k", "A", 60_000));
    t.false(await b.tryLease("k", "B", 60_000), "held by A");
    t.true(await a.tryLease("k", "A", 60_000), "the holder may take it again");
    t.true(await b.tryLease("other", "B", 60_000), "leases are per key");
    t.true(await a.renewLease("k", "A", 60_000));
    t.false(await b.renewLease("k", "B", 60_000), "only the holder renews");
    await b.releaseLease("k", "B");
    t.false(await b.tryLease("k", "B", 60_000), "releasing someone else's lease does nothing");
    await a.releaseLease("k", "A");
    t.true(await b.tryLease("k", "B", 60_000), "released: the next one takes it");
    // A holder that stops renewing (it died): its lease lapses on the store's clock and is taken.
    t.true(await a.tryLease("short", "A", 50));
    let taken = false;
    while (!taken) taken = await b.tryLease("short", "B", 60_000);
    t.false(await a.renewLease("short", "A", 60_000), "the lapsed holder learns it lost the lease");
  });

  test(`${name}: concurrent lease takes from many replicas: exactly one wins`, async (t) => {
    const a = await open(t);
    const others = await Promise.all([factory.sameDatabase(a), factory.sameDatabase(a)]);
    t.teardown(() => Promise.all(others.map((o) => o.close())));
    const stores = [a, ...others];
    const wins = await Promise.all(Array.from({ length: 60 }, (_, i) => stores[i % 3]!.tryLease("race", `owner-${i}`, 60_000)));
    t.is(wins.filter(Boolean).length, 1);
  });

  test(`${name}: a budget is one bucket for every replica: refilled continuously, never overdrawn under concurrency`, async (t) => {
    const a = await open(t);
    const b = await factory.sameDatabase(a);
    t.teardown(() => b.close());
    const budget = { capacity: 3, windowMs: 60_000 };
    t.is(await a.tokens("em", budget, T0), 3, "full on first use");
    t.is(await a.takeToken("em", budget, T0), 2);
    t.is(await b.takeToken("em", budget, T0), 1, "the other replica takes from the same bucket");
    t.is(await a.takeToken("em", budget, T0), 0);
    t.is(await b.takeToken("em", budget, T0), undefined, "spent");
    t.is(await b.tokens("em", budget, T0), 0);
    t.is(await a.takeToken("em", budget, T0 + 20_000), 0, "a third of the window refills one token");
    t.is(await a.takeToken("em", budget, T0 + 10_000), undefined, "a replica whose clock is behind gets no refill");
    t.is(await b.tokens("em", budget, T0 + 10 * 60_000), 3, "the bucket holds at most its capacity");
    // 50 takes at once from three stores on a bucket of 5: exactly 5 succeed.
    const c = await factory.sameDatabase(a);
    t.teardown(() => c.close());
    const small = { capacity: 5, windowMs: 3_600_000 };
    const stores = [a, b, c];
    const taken = await Promise.all(Array.from({ length: 50 }, (_, i) => stores[i % 3]!.takeToken("race", small, T0)));
    t.is(taken.filter((x) => x !== undefined).length, 5);
    t.is(await c.tokens("race", small, T0), 0);
  });

  test(`${name}: times with fractions of a millisecond (the service's monotonic clock) are accepted everywhere`, async (t) => {
    const s = await open(t);
    await s.save([measured(300, { fetchedAtMs: T0 + 0.375, sourceUpdatedAtMs: T0 + 0.5 })]);
    const [p] = await range(s, T0 - 0.5, T0 + 0.5);
    t.true(Math.abs(p!.fetchedAtMs - (T0 + 0.375)) < 1);
    await s.writeAnswer("k", { json: "1", expiresAtMs: T0 + 1000.25 });
    t.truthy(await s.readAnswer("k", T0 + 999.5));
    await s.pruneAnswers(T0 + 0.75);
    t.is(await s.takeToken("em", { capacity: 2, windowMs: 1000 }, T0 + 0.125), 1);
    t.true((await s.tokens("em", { capacity: 2, windowMs: 1000 }, T0 + 0.625)) < 2);
  });

  test(`${name}: opening the same database again keeps everything (migrations run once)`, async (t) => {
    const a = await open(t);
    await a.save([measured(300)]);
    await a.writeAnswer("k", { json: "1", expiresAtMs: T0 + 1000 });
    const reopened = await Promise.all([factory.sameDatabase(a), factory.sameDatabase(a), factory.sameDatabase(a)]);
    t.teardown(() => Promise.all(reopened.map((r) => r.close())));
    for (const r of reopened) {
      t.is((await range(r)).length, 1);
      t.is((await r.readAnswer("k", T0))?.json, "1");
    }
  });
}
