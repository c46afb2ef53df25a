/**
 * The sampler against the fake libnvidia-ml.so.1 (real koffi binding, real worker thread) and fake
 * powercap trees (real file reads). The truth is the scripted power profile, integrated exactly. The
 * accuracy of every interval over seconds of real sampling is a soak: test/e2e/sampler-accuracy.test.ts.
 *
 * Clock: the fake stamps readings with the wall clock; the agent converts them to its monotonic,
 * epoch-aligned clock. The test maps agent instants back to wall time with the same offset, known to a few
 * microseconds, and allows for that: CLOCK_TOLERANCE_MS at the highest power.
 */
import test from "ava";
import { TimeTravel } from "../../../helpers/time-travel.js";
import { NvmlSource } from "../../../../server/agent/devices/nvml.js";
import { RaplSource } from "../../../../server/agent/devices/rapl.js";
import { Sampler } from "../../../../server/agent/energy/sampler.js";
import { ManualClock } from "../../../../server/shared/clock.js";
import { fakeNvml, profileEnergyJ, wallOffsetMs, type FakeNvmlConfig, type Segment } from "../../../helpers/fake-nvml.js";
import { aboutToWrapTree } from "../../../helpers/powercap.js";

const CLOCK_TOLERANCE_MS = 0.05;
const ALIGNED: Segment[] = [
  { powerW: 700, ms: 500 },
  { powerW: 80, ms: 300 },
  { powerW: 400, ms: 200 },
];
const _UNALIGNED: Segment[] = [
  { powerW: 700, ms: 250 },
  { powerW: 80, ms: 250 },
];

async function sampling(config: FakeNvmlConfig, ms: number) {
  const fake = fakeNvml(config);
  const nvml = await NvmlSource.probe({ libraryPath: fake.libraryPath, samplingPeriodMs: 100 });
  const sampler = new Sampler([nvml]);
  sampler.start();
  await new Promise((r) => setTimeout(r, ms));
  await sampler.stop();
  fake.cleanup();
  const offset = wallOffsetMs();
  const truth = (profile: Segment[], t0: number, t1: number) => profileEnergyJ(profile, fake.epochMs, t0 + offset, t1 + offset);
  return { sampler, nvml, truth };
}

/**
 * Instants inside the covered part of a device's timeline, deterministic. The first WARMUP_MS are left out:
 * the sampler spends them learning when the counter updates (until then its bound is wide, see below).
 */
const WARMUP_MS = 2000;
function instants(sampler: Sampler, id: string, durationMs: number, count: number, warmupMs = WARMUP_MS): Array<[number, number]> {
  const first = firstPoint(sampler, id) + warmupMs;
  const last = lastPoint(sampler, id);
  const span = last - first - durationMs;
  return Array.from({ length: count }, (_, i) => {
    const t0 = first + (span * (i + 0.37)) / count;
    return [t0, t0 + durationMs];
  });
}
const firstPoint = (s: Sampler, id: string): number => (s as any).tracks.get(id).timeline.first().tMs as number;
const lastPoint = (s: Sampler, id: string): number => (s as any).tracks.get(id).timeline.last().tMs;

test("a window inside one counter update is flagged short; one past the last update is flagged extrapolated", async (t) => {
  const epochMs = Math.floor(Date.now() / 1000) * 1000 - 60_000;
  const { sampler, truth } = await sampling({ gpus: [{ profile: ALIGNED }], epochMs }, 1500);
  const last = lastPoint(sampler, "gpu:0");
  const short = sampler.energyBetween("gpu:0", last - 90, last - 40);
  t.true(short.shortWindow);
  const open = sampler.energyBetween("gpu:0", last - 500, last + 60);
  t.true(open.extrapolated);
  t.true(Math.abs(open.energyJ - truth(ALIGNED, last - 500, last + 60)) <= open.uncertaintyJ + 700 * CLOCK_TOLERANCE_MS * 1e-3);
});

test("a GPU without an energy counter: power integrated, flagged, within its bound", async (t) => {
  const epochMs = Math.floor(Date.now() / 1000) * 1000 - 60_000;
  const { sampler, truth } = await sampling({ gpus: [{ profile: ALIGNED, energyCounter: false }], epochMs }, 3000);
  for (const [t0, t1] of instants(sampler, "gpu:0", 1000, 20)) {
    const e = sampler.energyBetween("gpu:0", t0, t1);
    t.true(e.powerIntegration);
    const err = Math.abs(e.energyJ - truth(ALIGNED, t0, t1));
    t.true(err <= e.uncertaintyJ + 700 * CLOCK_TOLERANCE_MS * 1e-3, `error ${err} J > bound ${e.uncertaintyJ} J`);
    // This profile steps three times a second; each step between two power samples adds |dP| x gap / 2 to
    // the bound (~14 % here at 100 ms gaps, more when a loaded machine delays reads). It must stay well
    // short of "anything goes".
    t.true(e.uncertaintyJ < 0.5 * e.energyJ, `the bound stays useful: ${e.uncertaintyJ} J of ${e.energyJ} J`);
  }
});

test("a counter reset inside a window is flagged and never gives negative energy", async (t) => {
  // The reset is scripted an hour out and reached by time travel once readings flow (no race with start-up);
  // the jump lands 1.5 s before it, so that readings cover the interval around it in real time.
  const profile = [{ powerW: 300, ms: 1000 }];
  const epochMs = Date.now();
  const resetAfterMs = 3_600_000;
  const travel = new TimeTravel(epochMs);
  const fake = fakeNvml({ gpus: [{ profile, resetAtMs: resetAfterMs, initialEnergyJ: 50_000 }], epochMs });
  travel.attach(fake.libraryPath);
  const nvml = await NvmlSource.probe({ libraryPath: fake.libraryPath, samplingPeriodMs: 100, clockShift: travel.clock.buffer });
  const sampler = new Sampler([nvml], { clock: travel.clock });
  sampler.start();
  t.teardown(async () => (await sampler.stop(), fake.cleanup()));
  await waitFor(() => sampler.hasReading("gpu:0"));
  travel.jumpTo(epochMs + resetAfterMs - 1500);
  const offset = wallOffsetMs();
  const resetAt = epochMs + resetAfterMs - offset;
  await waitFor(() => lastPoint(sampler, "gpu:0") > resetAt + 1000);
  const truth = (t0: number, t1: number) => profileEnergyJ(profile, fake.epochMs, t0 + offset, t1 + offset);
  const e = sampler.energyBetween("gpu:0", resetAt - 600, resetAt + 700);
  t.true(e.counterReset);
  t.true(e.energyJ > 0);
  t.true(
    Math.abs(e.energyJ - truth(resetAt - 600, resetAt + 700)) <= e.uncertaintyJ + 1,
    `${e.energyJ} J ± ${e.uncertaintyJ} vs ${truth(resetAt - 600, resetAt + 700)} J`,
  );
  const before = sampler.energyBetween("gpu:0", resetAt - 900, resetAt - 200);
  t.false(before.counterReset);
});

test("a lost GPU is marked lost with its reason while the other keeps its timeline", async (t) => {
  // The loss is scripted an hour out and reached by time travel once both timelines have points.
  const epochMs = Date.now();
  const travel = new TimeTravel(epochMs);
  const fake = fakeNvml({ gpus: [{ lostAfterMs: 3_600_000 }, {}], epochMs });
  travel.attach(fake.libraryPath);
  const nvml = await NvmlSource.probe({ libraryPath: fake.libraryPath, samplingPeriodMs: 100, clockShift: travel.clock.buffer });
  const sampler = new Sampler([nvml], { clock: travel.clock });
  sampler.start();
  t.teardown(async () => (await sampler.stop(), fake.cleanup()));
  const [g0, g1] = sampler.devices();
  await waitFor(() => sampler.hasReading("gpu:0") && sampler.hasReading("gpu:1"));
  travel.jumpTo(epochMs + 3_600_000 + 1000);
  await waitFor(() => g0!.status === "lost");
  t.regex(g0!.statusReason!, /GPU_IS_LOST/);
  const lostAt = lastPoint(sampler, "gpu:0");
  await waitFor(() => lastPoint(sampler, "gpu:1") > lostAt + 500);
  t.is(g1!.status, "ok");
  t.is(lastPoint(sampler, "gpu:0"), lostAt, "gpu:0's timeline stops");
});

/** Waits on a condition (polling), up to 30 s. */
async function waitFor(cond: () => boolean): Promise<void> {
  for (const start = Date.now(); !cond(); ) {
    if (Date.now() - start > 30_000) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("a RAPL zone that wraps three times inside one interval gives the exact energy", (t) => {
  const rangeUj = 1_000_000; // 1 J
  const tree = aboutToWrapTree(rangeUj);
  t.teardown(tree.cleanup);
  const clock = new ManualClock();
  const rapl = RaplSource.probe({ root: tree.root, maxPowerW: 1000, samplingPeriodMs: 100, clock });
  const sampler = new Sampler([rapl], { clock });
  let rawUj = rangeUj - 1_000;
  let truthJ = 0;
  sampler.ingest(rapl.readAll());
  const t0 = clock.nowMs();
  for (const stepUj of [400_000, 700_000, 650_000, 900_000, 300_000, 450_000]) {
    clock.advance(100);
    truthJ += stepUj / 1e6;
    rawUj = (rawUj + stepUj) % rangeUj;
    tree.setEnergyUj("intel-rapl:0", rawUj);
    sampler.ingest(rapl.readAll());
  }
  const e = sampler.energyBetween("cpu:0", t0, clock.nowMs());
  t.is(Math.round(e.energyJ * 1e9) / 1e9, truthJ);
  t.is(e.uncertaintyJ, 0);
  t.is(Math.round(truthJ), 3, "three whole ranges and a bit");
});

test("waitForReadingsAfter resolves once every device has a newer reading", async (t) => {
  const fake = fakeNvml({ gpus: [{}, {}] });
  t.teardown(fake.cleanup);
  const nvml = await NvmlSource.probe({ libraryPath: fake.libraryPath, samplingPeriodMs: 100 });
  const sampler = new Sampler([nvml]);
  sampler.start();
  t.teardown(() => sampler.stop());
  const asked = sampler.now();
  await sampler.waitForReadingsAfter(asked, ["gpu:0", "gpu:1"], 5000);
  t.true(lastPoint(sampler, "gpu:0") > asked);
  t.true(lastPoint(sampler, "gpu:1") > asked);
});
