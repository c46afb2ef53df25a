import test from "ava";
import fc from "fast-check";
import { bridge, chain, integrate, resetEstimate, type IntegrationState } from "../../../../server/agent/core/window-energy.js";

test("NVML across one restart: inside each run from its timeline, across the gap from the raw counter", (t) => {
  // Run 1: began at cum 100 (raw 5100), last checkpoint cum 400 (raw 5400). Run 2 starts at raw 5900, ends at cum 250.
  const r = chain({
    begin: { tMs: 1000, cumJ: 100, rawJ: 5100 },
    runs: [
      { runId: 1, first: { tMs: 0, cumJ: 0, rawJ: 5000 }, last: { tMs: 4000, cumJ: 400, rawJ: 5400 } },
      { runId: 2, first: { tMs: 9000, cumJ: 0, rawJ: 5900 }, last: { tMs: 9000, cumJ: 0, rawJ: 5900 } },
    ],
    end: { tMs: 12000, cumJ: 250 },
  });
  t.deepEqual(r, { energyJ: 300 + 500 + 250, uncertaintyJ: 0, wrapsInferred: 0, resets: 0, estimatedJ: 0 });
});

test("a checkpoint older than the begin edge is not used: the chain starts at the begin edge", (t) => {
  const r = chain({
    begin: { tMs: 5000, cumJ: 500, rawJ: 10_500 },
    runs: [
      { runId: 1, first: { tMs: 0, cumJ: 0, rawJ: 10_000 }, last: { tMs: 4000, cumJ: 400, rawJ: 10_400 } },
      { runId: 2, first: { tMs: 9000, cumJ: 0, rawJ: 10_900 }, last: { tMs: 9000, cumJ: 0, rawJ: 10_900 } },
    ],
    end: { tMs: 10_000, cumJ: 100 },
  });
  t.is(r.energyJ, 400 + 100);
});

test("RAPL wraps missed while the agent was down are inferred from the power drawn before", (t) => {
  // range 1000 J; 200 W for 12 s of downtime = 2400 J: raw went 100 -> 500 through two whole wraps.
  const r = bridge({ tMs: 0, cumJ: 0, rawJ: 100, powerW: 200 }, { tMs: 12_000, cumJ: 0, rawJ: 500 }, 1000);
  t.is(r.energyJ, 2400);
  t.is(r.wrapsInferred, 2);
  t.is(r.uncertaintyJ, 500);
});

test("an NVML counter that went backwards across downtime is a reset, estimated from power, never negative", (t) => {
  const r = bridge({ tMs: 0, cumJ: 0, rawJ: 90_000, powerW: 100 }, { tMs: 10_000, cumJ: 0, rawJ: 300 });
  t.is(r.resets, 1);
  t.is(r.energyJ, 1000);
  t.is(r.uncertaintyJ, 700);
});

test("a device without a counter bridges downtime with power x time, all of it uncertain", (t) => {
  const r = bridge({ tMs: 0, cumJ: 0, powerW: 100 }, { tMs: 2000, cumJ: 0, powerW: 300 });
  t.deepEqual(r, { energyJ: 400, uncertaintyJ: 400, wrapsInferred: 0, resets: 0, estimatedJ: 400 });
});

test("two restarts chain through the middle run", (t) => {
  const r = chain({
    begin: { tMs: 100, cumJ: 10, rawJ: 1010 },
    runs: [
      { runId: 1, first: { tMs: 0, cumJ: 0, rawJ: 1000 }, last: { tMs: 1000, cumJ: 60, rawJ: 1060 } },
      { runId: 2, first: { tMs: 2000, cumJ: 0, rawJ: 1100 }, last: { tMs: 3000, cumJ: 70, rawJ: 1170 } },
      { runId: 3, first: { tMs: 4000, cumJ: 0, rawJ: 1200 }, last: { tMs: 4000, cumJ: 0, rawJ: 1200 } },
    ],
    end: { tMs: 5000, cumJ: 25 },
  });
  t.is(r.energyJ, 50 + 40 + 70 + 30 + 25);
});

// ---- one counter-reset policy, and integration of raw readings ----

test("resetEstimate: the bound covers every amount of energy lost before the restart (0 to power x elapsed)", (t) => {
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 1e6, noNaN: true }),
      fc.double({ min: 0, max: 2000, noNaN: true }),
      fc.double({ min: 0, max: 3600, noNaN: true }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (countedJ, powerW, elapsedS, lostShare) => {
        const { energyJ, uncertaintyJ } = resetEstimate(countedJ, powerW, elapsedS);
        const trueJ = countedJ + lostShare * powerW * elapsedS;
        return energyJ >= countedJ && Math.abs(trueJ - energyJ) <= uncertaintyJ * (1 + 1e-12) + 1e-9;
      },
    ),
  );
  t.pass();
});

test("a reset between two readings and one across downtime follow the same policy", (t) => {
  const inRun = integrate(
    { last: { tMs: 0, energyJ: 500, uncertaintyJ: 0, resets: 0 }, lastRawJ: 90_000, lastPowerW: 100 },
    { tMs: 10_000, counterJ: 300, powerW: 100 },
  );
  const across = bridge({ tMs: 0, cumJ: 0, rawJ: 90_000, powerW: 100 }, { tMs: 10_000, cumJ: 0, rawJ: 300 });
  t.is(inRun!.energyJ - 500, across.energyJ);
  t.is(inRun!.uncertaintyJ, across.uncertaintyJ);
  t.is(inRun!.resets, 1);
});

/** A device drawing power P_i over [t_i, t_i+1); its counter restarts from 0 at some instants. */
const device = fc.array(
  fc.record({
    dtMs: fc.integer({ min: 1, max: 500 }),
    powerW: fc.double({ min: 0, max: 1000, noNaN: true }),
    reset: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
  }),
  { minLength: 1, maxLength: 60 },
);

test("integrate: counters with resets and power steps give a timeline that never decreases and whose bound covers the truth", (t) => {
  fc.assert(
    fc.property(fc.double({ min: 1e3, max: 1e9, noNaN: true }), device, (startRawJ, intervals) => {
      let state: IntegrationState = { last: undefined, lastRawJ: undefined, lastPowerW: undefined };
      let tMs = 0;
      let rawJ = startRawJ;
      let trueJ = 0;
      let powerW = intervals[0]!.powerW;
      const first = integrate(state, { tMs, counterJ: rawJ, powerW });
      state = { last: first, lastRawJ: rawJ, lastPowerW: powerW };
      for (const [i, x] of intervals.entries()) {
        const p = x.powerW; // drawn over this interval, reported at its start
        const dtS = x.dtMs / 1000;
        const restartedJ = x.reset === undefined ? undefined : p * dtS * (1 - x.reset); // restarted from 0 at that share of the interval
        // A restart shows only as a counter that went backwards (one that lands higher is indistinguishable from no restart).
        rawJ = restartedJ !== undefined && restartedJ < rawJ ? restartedJ : rawJ + p * dtS;
        trueJ += p * dtS;
        tMs += x.dtMs;
        powerW = intervals[i + 1]?.powerW ?? p;
        const point = integrate(state, { tMs, counterJ: rawJ, powerW });
        if (!point || point.energyJ < state.last!.energyJ) return false;
        if (Math.abs(point.energyJ - trueJ) > point.uncertaintyJ + 1e-6 * Math.max(1, trueJ)) return false;
        state = { last: point, lastRawJ: rawJ, lastPowerW: point.powerW };
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test("integrate: without a counter, power is integrated by trapezoids, half the change as the bound", (t) => {
  const first = integrate({ last: undefined, lastRawJ: undefined, lastPowerW: undefined }, { tMs: 0, powerW: 100 });
  const second = integrate({ last: first, lastRawJ: undefined, lastPowerW: 100 }, { tMs: 2000, powerW: 300 });
  t.deepEqual(second, { tMs: 2000, energyJ: 400, uncertaintyJ: 200, resets: 0, powerW: 300 });
  t.is(
    integrate({ last: second, lastRawJ: undefined, lastPowerW: 300 }, { tMs: 2000, powerW: 5 }),
    undefined,
    "a reading not after the last adds nothing",
  );
});
