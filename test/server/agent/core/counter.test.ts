import test from "ava";
import fc from "fast-check";
import { counterDelta, inferWraps, wrapSafePeriodMs } from "../../../../server/agent/core/counter.js";

test("a rising counter gives its difference", (t) => {
  t.deepEqual(counterDelta(10, 25), { deltaJ: 15, event: "none" });
  t.deepEqual(counterDelta(10, 10, 100), { deltaJ: 0, event: "none" });
});

test("with a range, a decrease is one wrap", (t) => {
  t.deepEqual(counterDelta(90, 5, 100), { deltaJ: 15, event: "wrap" });
});

test("without a range, a decrease is a reset: only the energy since the restart is known", (t) => {
  t.deepEqual(counterDelta(5000, 12), { deltaJ: 12, event: "reset" });
});

test("summing wrap-aware deltas over any walk that wraps at most once per read gives the true energy", (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e6 }),
      fc.array(fc.integer({ min: 0, max: 1e6 }), { maxLength: 50 }),
      fc.integer({ min: 0, max: 1e6 }),
      (range, steps, start) => {
        let raw = start % range;
        let sum = 0;
        let truth = 0;
        for (const s of steps) {
          const step = s % range; // less than one whole range between two reads
          const next = (raw + step) % range;
          sum += counterDelta(raw, next, range).deltaJ;
          truth += step;
          raw = next;
        }
        return sum === truth;
      },
    ),
  );
  t.pass();
});

test("the wrap-safe period reads twice per wrap at the highest plausible power", (t) => {
  // 262,143 J at 1000 W wraps in 262 s; read at least every 131 s.
  t.is(wrapSafePeriodMs(262_143.32885, 1000), 131_071.664425);
});

test("wraps missed while nobody read are inferred from elapsed time and earlier power", (t) => {
  // range 1000 J, 200 W for 12 s = 2400 J: two whole wraps plus 400 J.
  t.deepEqual(inferWraps(100, 500, 1000, 12, 200), { deltaJ: 2400, wraps: 2 });
  t.deepEqual(inferWraps(100, 500, 1000, 1, 400), { deltaJ: 400, wraps: 0 });
});
