/**
 * The sampler's accuracy over seconds of real sampling (moved from the unit tier's
 * test/server/agent/energy/sampler.test.ts, which keeps the clock-driven and short cases): against the fake
 * libnvidia-ml.so.1 (real koffi binding, real worker thread), every interval of 1 s or more within 0.5 % of
 * the scripted power profile, integrated exactly. A soak whose errors depend on when the reads ran.
 *
 * Clock: the fake stamps readings with the wall clock; the agent converts them to its monotonic,
 * epoch-aligned clock. The test maps agent instants back to wall time with the same offset, known to a few
 * microseconds, and allows for that: CLOCK_TOLERANCE_MS at the highest power.
 */
import test from "ava";
import { NvmlSource } from "../../../server/agent/devices/nvml.js";
import { Sampler } from "../../../server/agent/energy/sampler.js";
import { fakeNvml, profileEnergyJ, wallOffsetMs, type FakeNvmlConfig, type Segment } from "../../helpers/fake-nvml.js";

const CLOCK_TOLERANCE_MS = 0.05;
const ALIGNED: Segment[] = [
  { powerW: 700, ms: 500 },
  { powerW: 80, ms: 300 },
  { powerW: 400, ms: 200 },
];
const UNALIGNED: Segment[] = [
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

test("energy counter: every interval of 1 s or more is within 0.5 % of the scripted truth; shorter ones within their bound", async (t) => {
  const epochMs = Math.floor(Date.now() / 1000) * 1000 - 60_000;
  const { sampler, truth } = await sampling({ gpus: [{ profile: ALIGNED }, { profile: UNALIGNED }], epochMs }, 5500);
  for (const durationMs of [1000, 1500, 2200]) {
    for (const [t0, t1] of instants(sampler, "gpu:0", durationMs, 25)) {
      const e = sampler.energyBetween("gpu:0", t0, t1);
      const want = truth(ALIGNED, t0, t1);
      t.true(Math.abs(e.energyJ - want) <= 0.005 * want, `${durationMs} ms: ${e.energyJ} J vs ${want} J`);
      t.false(e.shortWindow);
      t.false(e.extrapolated);
    }
  }
  for (const durationMs of [20, 50, 80, 130]) {
    for (const [t0, t1] of instants(sampler, "gpu:0", durationMs, 25)) {
      const e = sampler.energyBetween("gpu:0", t0, t1);
      const err = Math.abs(e.energyJ - truth(ALIGNED, t0, t1));
      t.true(err <= e.uncertaintyJ + 700 * CLOCK_TOLERANCE_MS * 1e-3, `${durationMs} ms: error ${err} J > bound ${e.uncertaintyJ} J`);
    }
  }
  // From the very start, before the update instants are learnt, every interval is within its (wider) bound.
  for (const [t0, t1] of instants(sampler, "gpu:0", 1000, 30, 0)) {
    const e = sampler.energyBetween("gpu:0", t0, t1);
    const err = Math.abs(e.energyJ - truth(ALIGNED, t0, t1));
    t.true(err <= e.uncertaintyJ + 700 * CLOCK_TOLERANCE_MS * 1e-3, `from the start: error ${err} J > bound ${e.uncertaintyJ} J`);
  }
  // Power steps that fall between counter updates: the interpolation is off, but never by more than its bound.
  for (const durationMs of [50, 1000]) {
    for (const [t0, t1] of instants(sampler, "gpu:1", durationMs, 40)) {
      const e = sampler.energyBetween("gpu:1", t0, t1);
      const err = Math.abs(e.energyJ - truth(UNALIGNED, t0, t1));
      t.true(
        err <= e.uncertaintyJ + 700 * CLOCK_TOLERANCE_MS * 1e-3,
        `unaligned ${durationMs} ms: error ${err} J > bound ${e.uncertaintyJ} J`,
      );
    }
  }
});
