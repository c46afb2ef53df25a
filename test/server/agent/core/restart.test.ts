import test from "ava";
import { bridge, chain } from "../../../../server/agent/core/restart.js";

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
