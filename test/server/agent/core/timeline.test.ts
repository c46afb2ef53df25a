import test from "ava";
import fc from "fast-check";
import { energyBetween, Timeline } from "../../../../server/agent/core/timeline.js";

function line(points: Array<[number, number, number?]>): Timeline {
  const tl = new Timeline();
  for (const [tMs, energyJ, powerW] of points)
    tl.push({ tMs, energyJ, uncertaintyJ: 0, resets: 0, ...(powerW !== undefined ? { powerW } : {}) });
  return tl;
}

test("energy is undefined before the first point", (t) => {
  t.is(line([[100, 0]]).energyAt(99), undefined);
});

test("constant power: interpolation is exact and the bound is zero", (t) => {
  const tl = line([
    [0, 0, 100],
    [100, 10, 100],
    [200, 20, 100],
    [300, 30, 100],
  ]);
  const e = tl.energyAt(150)!;
  t.is(e.energyJ, 15);
  t.is(e.edgeUncertaintyJ, 0);
  t.is(e.kind, "interpolated");
  t.is(tl.energyAt(200)!.kind, "exact");
});

test("a power step inside an interval stays within the reported bound", (t) => {
  // 100 W until t=150 ms, then 700 W; counter updates every 100 ms.
  const truth = (ms: number): number => (ms <= 150 ? 0.1 * ms : 15 + 0.7 * (ms - 150));
  const tl = line([
    [0, 0, 100],
    [100, truth(100), 100],
    [200, truth(200), 700],
    [300, truth(300), 700],
  ]);
  for (const ms of [110, 125, 150, 175, 190]) {
    const e = tl.energyAt(ms)!;
    t.true(
      Math.abs(e.energyJ - truth(ms)) <= e.edgeUncertaintyJ + 1e-9,
      `t=${ms}: error ${Math.abs(e.energyJ - truth(ms))} > bound ${e.edgeUncertaintyJ}`,
    );
  }
});

test("after the last update the energy is extrapolated with the last instant power, and flagged", (t) => {
  const tl = line([
    [0, 0, 200],
    [100, 20, 200],
  ]);
  const e = tl.energyAt(150)!;
  t.is(e.kind, "extrapolated");
  t.is(e.energyJ, 30);
  t.is(e.edgeUncertaintyJ, Number.POSITIVE_INFINITY, "the device's maximum power is unknown: unbounded");
});

test("an extrapolated edge is bounded by what the device can draw: 0 W to its maximum since the update", (t) => {
  const tl = new Timeline({ maxPowerW: 700 });
  tl.push({ tMs: 0, energyJ: 0, uncertaintyJ: 0, resets: 0, powerW: 200 });
  tl.push({ tMs: 100, energyJ: 20, uncertaintyJ: 0, resets: 0, powerW: 200 });
  const e = tl.energyAt(150)!;
  t.is(e.energyJ, 30);
  t.is(e.edgeUncertaintyJ, 500 * 0.05, "a step to 700 W just after the update is inside the bound");
  // A power seen above the limit (a transient) raises the maximum; the update instant's own uncertainty widens the span.
  tl.push({ tMs: 200, energyJ: 100, uncertaintyJ: 0, resets: 0, powerW: 800, timeUncertaintyMs: 2 });
  const e2 = tl.energyAt(250)!;
  t.is(e2.energyJ, 140);
  t.true(Math.abs(e2.edgeUncertaintyJ - 800 * 0.052) < 1e-9);
});

test("property: an extrapolated edge's bound holds for any power from 0 W to the maximum after the update", (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 700 }),
      fc.array(fc.double({ min: 0, max: 700, noNaN: true }), { minLength: 1, maxLength: 8 }),
      fc.double({ min: 1, max: 500, noNaN: true }),
      (lastW, afterW, dtMs) => {
        const tl = new Timeline({ maxPowerW: 700 });
        tl.push({ tMs: 0, energyJ: 0, uncertaintyJ: 0, resets: 0, powerW: lastW });
        tl.push({ tMs: 100, energyJ: lastW * 0.1, uncertaintyJ: 0, resets: 0, powerW: lastW });
        // The truth: piecewise-constant power after the update, any shape within [0, 700] W.
        const truthJ = lastW * 0.1 + afterW.reduce((sum, w) => sum + (w * dtMs) / afterW.length / 1000, 0);
        const e = tl.energyAt(100 + dtMs)!;
        return Math.abs(e.energyJ - truthJ) <= e.edgeUncertaintyJ + 1e-9;
      },
    ),
  );
  t.pass();
});

test("a point not after the last one is ignored (the same counter update read twice)", (t) => {
  const tl = line([
    [0, 0],
    [100, 10],
  ]);
  t.false(tl.push({ tMs: 100, energyJ: 10, uncertaintyJ: 0, resets: 0 }));
  t.is(tl.size, 2);
});

test("the timeline stays bounded", (t) => {
  const tl = new Timeline({ capacity: 100 });
  for (let i = 0; i < 1000; i++) tl.push({ tMs: i, energyJ: i, uncertaintyJ: 0, resets: 0 });
  t.true(tl.size <= 100);
  t.is(tl.last()!.tMs, 999);
  t.is(tl.energyAt(0), undefined, "dropped history is no longer answered");
  t.is(tl.energyAt(950.5)!.energyJ, 950.5);
});

test("energyBetween adds both edges' bounds and the approximations accumulated between them", (t) => {
  const tl = new Timeline();
  tl.push({ tMs: 0, energyJ: 0, uncertaintyJ: 1, resets: 0 });
  tl.push({ tMs: 100, energyJ: 10, uncertaintyJ: 3, resets: 1 });
  tl.push({ tMs: 200, energyJ: 20, uncertaintyJ: 3, resets: 1 });
  const r = energyBetween(tl.energyAt(0)!, tl.energyAt(200)!);
  t.is(r.energyJ, 20);
  t.is(r.uncertaintyJ, 2);
});

test("property: for piecewise-constant power changing only at updates, any interval is exact", (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 2, maxLength: 40 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (powers, a, b) => {
        const tl = new Timeline();
        let energyJ = 0;
        tl.push({ tMs: 0, energyJ: 0, uncertaintyJ: 0, resets: 0 });
        powers.forEach((p, i) => {
          energyJ += p * 0.1;
          tl.push({ tMs: (i + 1) * 100, energyJ, uncertaintyJ: 0, resets: 0 });
        });
        const end = powers.length * 100;
        const [t0, t1] = [Math.min(a, b) * end, Math.max(a, b) * end];
        const truth = (ms: number): number => {
          const k = Math.min(Math.floor(ms / 100), powers.length - 1);
          return powers.slice(0, k).reduce((s, p) => s + p * 0.1, 0) + (powers[k]! * (ms - k * 100)) / 1000;
        };
        const r = energyBetween(tl.energyAt(t0)!, tl.energyAt(t1)!);
        return Math.abs(r.energyJ - (truth(t1) - truth(t0))) < 1e-6;
      },
    ),
  );
  t.pass();
});

test("property: with update instants known only to ±d, every interpolated edge is within its bound", (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 700 }), { minLength: 3, maxLength: 30 }),
      fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 31, maxLength: 31 }),
      fc.double({ min: 0, max: 5, noNaN: true }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.nat(),
      (powers, offsets, dMs, at, near) => {
        // True updates every 100 ms; power constant between them. Each point is stamped up to d off its true instant.
        const tl = new Timeline({ maxPowerW: 700 });
        let energyJ = 0;
        tl.push({ tMs: 0, energyJ: 0, uncertaintyJ: 0, resets: 0, powerW: powers[0]!, timeUncertaintyMs: dMs });
        powers.forEach((p, i) => {
          energyJ += p * 0.1;
          const next = powers[i + 1] ?? p;
          tl.push({
            tMs: (i + 1) * 100 + offsets[i + 1]! * dMs,
            energyJ,
            uncertaintyJ: 0,
            resets: 0,
            powerW: next,
            timeUncertaintyMs: dMs,
          });
        });
        const truth = (ms: number): number => {
          const k = Math.min(Math.floor(ms / 100), powers.length - 1);
          return powers.slice(0, k).reduce((s, p) => s + p * 0.1, 0) + (powers[k]! * (ms - k * 100)) / 1000;
        };
        // Edges within d of a stamp: where a misplaced update instant matters.
        const k = 1 + (near % (powers.length - 1));
        const tMs = k * 100 + offsets[k]! * dMs + (2 * at - 1) * dMs;
        const e = tl.energyAt(tMs)!;
        return Math.abs(e.energyJ - truth(tMs)) <= e.edgeUncertaintyJ + 1e-9;
      },
    ),
    { numRuns: 2000 },
  );
  t.pass();
});

test("an update stamped late at a power step: the edge just before the stamp is bounded by the higher power", (t) => {
  // The step from 0 W to 700 W happened at 100 ms; the point is stamped 105 ± 5 ms.
  const tl = new Timeline({ maxPowerW: 700 });
  tl.push({ tMs: 0, energyJ: 0, uncertaintyJ: 0, resets: 0, powerW: 0, timeUncertaintyMs: 5 });
  tl.push({ tMs: 105, energyJ: 0, uncertaintyJ: 0, resets: 0, powerW: 700, timeUncertaintyMs: 5 });
  tl.push({ tMs: 200, energyJ: 66.5, uncertaintyJ: 0, resets: 0, powerW: 700, timeUncertaintyMs: 5 });
  const e = tl.energyAt(104.99)!;
  const truthJ = (700 * 4.99) / 1000;
  t.true(Math.abs(e.energyJ - truthJ) <= e.edgeUncertaintyJ, `${e.energyJ} J vs ${truthJ} J ± ${e.edgeUncertaintyJ}`);
});

test("an interval longer than the sampling expects (readings missed) is bounded by the maximum power: a hidden burst stays inside", (t) => {
  // 120 W, except a 60 ms burst at 690 W that a 300 ms interval (two readings missed) smooths into its mean.
  const power = (ms: number): number => (ms >= 240 && ms < 300 ? 690 : 120);
  const energyTo = (ms: number): number => {
    let e = 0;
    for (let x = 0; x < ms; x += 1) e += power(x) / 1000;
    return e;
  };
  for (const observedSpanMs of [150, Number.POSITIVE_INFINITY]) {
    const tl = new Timeline({ maxPowerW: 700, observedSpanMs });
    for (const ms of [-100, 0, 300, 400]) tl.push({ tMs: ms, energyJ: energyTo(Math.max(0, ms)), uncertaintyJ: 0, resets: 0, powerW: 120 });
    const e = tl.energyAt(240)!;
    const error = Math.abs(e.energyJ - energyTo(240));
    if (observedSpanMs === 150) t.true(error <= e.edgeUncertaintyJ, `error ${error} J > bound ${e.edgeUncertaintyJ} J`);
    else t.true(error > e.edgeUncertaintyJ, "the power seen around a long interval does not bound it (why the maximum is used)");
  }
});
