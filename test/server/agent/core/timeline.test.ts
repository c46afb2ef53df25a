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
  t.true(e.edgeUncertaintyJ > 0);
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
  const tl = new Timeline(100);
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
