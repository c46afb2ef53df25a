import test from "ava";
import fc from "fast-check";
import { BOUNDARY_PERIOD_MS, boundariesBetween, boundaryAfter, splitAtMarks, type Mark } from "../../../../server/agent/core/carbon.js";

const T0 = Date.UTC(2024, 10, 30, 10, 0);

test("boundaries are the 5-minute UTC instants strictly inside a range", (t) => {
  t.is(boundaryAfter(T0), T0 + BOUNDARY_PERIOD_MS, "a boundary itself is not after itself");
  t.is(boundaryAfter(T0 - 1), T0);
  t.deepEqual(boundariesBetween(T0 - 1, T0 + 2 * BOUNDARY_PERIOD_MS), [T0, T0 + BOUNDARY_PERIOD_MS]);
  t.deepEqual(boundariesBetween(T0, T0 + BOUNDARY_PERIOD_MS), []);
});

test("in one run, pieces are the differences of consecutive marks", (t) => {
  const marks: Mark[] = [
    { tMs: T0 + 1000, runId: 1, cumJ: 100 },
    { tMs: T0 + 300_000, runId: 1, cumJ: 400 },
    { tMs: T0 + 600_000, runId: 1, cumJ: 1000 },
    { tMs: T0 + 650_000, runId: 1, cumJ: 1010 },
  ];
  t.deepEqual(splitAtMarks(marks, 910), [
    { startMs: T0 + 1000, endMs: T0 + 300_000, energyJ: 300 },
    { startMs: T0 + 300_000, endMs: T0 + 600_000, energyJ: 600 },
    { startMs: T0 + 600_000, endMs: T0 + 650_000, energyJ: 10 },
  ]);
});

test("across restarts, the downtime pieces share the chained remainder by length", (t) => {
  const marks: Mark[] = [
    { tMs: 0, runId: 1, cumJ: 10 },
    { tMs: 100, runId: 1, cumJ: 60 }, // run 1 ends: 50 J measured
    { tMs: 200, runId: 2, cumJ: 0 }, // run 2: its own cumulative energy
    { tMs: 300, runId: 2, cumJ: 20 },
    { tMs: 600, runId: 3, cumJ: 5 }, // 300 ms of downtime
    { tMs: 700, runId: 3, cumJ: 15 },
  ];
  // Total from the chain: 50 + 20 + 10 measured in runs, 120 J in the 100 + 300 ms of downtime.
  const pieces = splitAtMarks(marks, 200);
  t.deepEqual(
    pieces.map((p) => p.energyJ),
    [50, 30, 20, 90, 10],
  );
  t.deepEqual(
    pieces.map((p) => [p.startMs, p.endMs]),
    [
      [0, 100],
      [100, 200],
      [200, 300],
      [300, 600],
      [600, 700],
    ],
  );
});

test("marks at one instant make no empty piece; fewer than two marks make none", (t) => {
  t.deepEqual(splitAtMarks([{ tMs: 5, runId: 1, cumJ: 1 }], 0), []);
  const pieces = splitAtMarks(
    [
      { tMs: 0, runId: 1, cumJ: 0 },
      { tMs: 0, runId: 1, cumJ: 0 },
      { tMs: 10, runId: 1, cumJ: 4 },
    ],
    4,
  );
  t.deepEqual(pieces, [{ startMs: 0, endMs: 10, energyJ: 4 }]);
});

test("property: pieces tile the window and sum to the total, in-run pieces exact", (t) => {
  const mark = fc.record({
    dtMs: fc.integer({ min: 1, max: 600_000 }),
    runStep: fc.constantFrom(0, 0, 0, 1),
    dJ: fc.double({ min: 0, max: 1e5, noNaN: true }),
  });
  fc.assert(
    fc.property(fc.array(mark, { minLength: 1, maxLength: 40 }), fc.double({ min: 0, max: 1e6, noNaN: true }), (steps, downtimeJ) => {
      const marks: Mark[] = [{ tMs: T0, runId: 1, cumJ: 0 }];
      let inRunJ = 0;
      for (const s of steps) {
        const prev = marks[marks.length - 1]!;
        const runId = prev.runId + s.runStep;
        const cumJ = s.runStep ? s.dJ : prev.cumJ + s.dJ;
        if (!s.runStep) inRunJ += s.dJ;
        marks.push({ tMs: prev.tMs + s.dtMs, runId, cumJ });
      }
      const restarts = steps.some((s) => s.runStep);
      const totalJ = inRunJ + (restarts ? downtimeJ : 0);
      const pieces = splitAtMarks(marks, totalJ);
      t.is(pieces[0]!.startMs, T0);
      t.is(pieces[pieces.length - 1]!.endMs, marks[marks.length - 1]!.tMs);
      pieces.forEach((p, i) => i > 0 && t.is(p.startMs, pieces[i - 1]!.endMs));
      const sum = pieces.reduce((a, p) => a + p.energyJ, 0);
      return Math.abs(sum - totalJ) <= 1e-9 * Math.max(1, totalJ) && pieces.every((p) => p.energyJ >= 0);
    }),
  );
});
