/**
 * The NVML reader without a thread, real time or the C library: an in-memory NVML whose energy counter
 * moves every 100 ms at a known phase, a manual clock that each call advances by its read time, and timers
 * the test runs by hand. Every stamp can then be compared with the instant its value truly became current.
 */
import test from "ava";
import { ManualClock } from "../../../../server/shared/clock.js";
import { FIELD_TOTAL_ENERGY, type FieldRequest, type FieldResult, type Nvml } from "../../../../server/agent/devices/nvml-binding.js";
import type { GpuPlan } from "../../../../server/agent/devices/nvml-probe.js";
import { ReadLoop, type Timers } from "../../../../server/agent/devices/nvml-reader.js";
import type { Reading } from "../../../../server/agent/devices/energy-source.js";

const UPDATE_MS = 100;
const READ_MS = 4;
const T0 = 1_764_000_000_000;

/** One GPU per handle (its index): a counter that steps every 100 ms at the GPU's phase, at constant power. */
class MemoryNvml implements Nvml {
  energyReads = 0;
  /** Every energy read: when it ran (start, end). */
  readonly reads: Array<{ handle: number; startMs: number; endMs: number }> = [];

  /** Extra time spent in a read (the thread preempted inside the call): [before, after] the driver samples the counter. */
  stall: (readNo: number) => [number, number] = () => [0, 0];

  constructor(
    private readonly clock: ManualClock,
    private readonly gpus: Array<{ phaseMs: number; powerW: number }>,
    private readonly stamps: "update" | "read",
  ) {}

  /** The last update instant at or before t, for GPU i. */
  updateBefore(i: number, tMs: number): number {
    const { phaseMs } = this.gpus[i]!;
    return T0 + phaseMs + Math.floor((tMs - T0 - phaseMs) / UPDATE_MS) * UPDATE_MS;
  }

  /** The instant the counter took a value, for GPU i (the inverse of counterMj). */
  instantOf(i: number, counterJ: number): number {
    return T0 + (counterJ * 1000) / this.gpus[i]!.powerW;
  }

  fieldValues(dev: unknown, requests: readonly FieldRequest[]): { ret: number; results: FieldResult[] } {
    const i = dev as number;
    const startMs = this.clock.nowMs();
    const [stallBefore, stallAfter] = this.stall(this.energyReads);
    this.clock.advance(READ_MS / 2 + stallBefore); // the driver samples the counter in the middle of the call
    const at = this.clock.nowMs();
    const update = this.updateBefore(i, at);
    this.clock.advance(READ_MS / 2 + stallAfter);
    this.energyReads++;
    this.reads.push({ handle: i, startMs, endMs: this.clock.nowMs() });
    const results = requests.map((r): FieldResult => {
      if (r.fieldId !== FIELD_TOTAL_ENERGY) return { ret: 0, timestampUs: at * 1000, value: this.gpus[i]!.powerW * 1000 };
      const counterMj = (update - T0) * this.gpus[i]!.powerW; // W x ms = mJ
      return { ret: 0, timestampUs: (this.stamps === "update" ? update : at) * 1000, value: counterMj };
    });
    return { ret: 0, results };
  }

  init = () => 0;
  shutdown = () => 0;
  errorString = () => "";
  driverVersion = () => "test";
  count = () => this.gpus.length;
  handle = (i: number) => i;
  name = () => "in-memory GPU";
  uuid = (dev: unknown) => `GPU-mem-${String(dev)}`;
  powerLimitMw = () => 700_000;
  migEnabled = () => false;
  totalEnergyMj = (): [number, number] => [3, 0];
  powerUsageMw = (dev: unknown): [number, number] => [0, this.gpus[dev as number]!.powerW * 1000];
  temperatureC = (): [number, number] => [0, 40];
}

/** Timers the test runs: each fires at its due instant on the manual clock. */
class ManualTimers implements Timers {
  private queue: Array<{ atMs: number; fn: () => void }> = [];
  /** Timers set so far: the loop sets one per wake-up. */
  fired = 0;
  /** How late the n-th timer fires (a busy CPU), ms. */
  lateness: (n: number) => number = () => 0;
  constructor(private readonly clock: ManualClock) {}
  setTimeout(fn: () => void, ms: number): unknown {
    const entry = { atMs: this.clock.nowMs() + ms + this.lateness(this.fired++), fn };
    this.queue.push(entry);
    return entry;
  }
  clearTimeout(handle: unknown): void {
    this.queue = this.queue.filter((e) => e !== handle);
  }
  /** Fires every timer due up to untilMs, in order. */
  runUntil(untilMs: number): void {
    for (;;) {
      this.queue.sort((a, b) => a.atMs - b.atMs);
      const next = this.queue[0];
      if (!next || next.atMs > untilMs) break;
      this.queue.shift();
      if (next.atMs > this.clock.nowMs()) this.clock.set(next.atMs);
      next.fn();
    }
    if (this.clock.nowMs() < untilMs) this.clock.set(untilMs);
  }
}

function plan(i: number): GpuPlan {
  return {
    device: { id: `gpu:${i}`, domain: "gpu", index: i, name: "in-memory GPU", hasEnergyCounter: true, status: "ok" },
    handle: i,
    energy: "field",
    power: { fieldId: 186, scopeId: 0 },
    memoryPower: false,
  };
}

/** A clock whose thread is sometimes preempted: now and then, reading it finds time gone by (anywhere: before a read, inside, after). */
class PreemptedClock extends ManualClock {
  private reads = 0;
  preemptMs: (n: number) => number = () => 0;
  override nowMs(): number {
    const ms = this.preemptMs(this.reads++);
    if (ms > 0) this.advance(ms);
    return super.nowMs();
  }
}

function setup(gpus: Array<{ phaseMs: number; powerW: number }>, stamps: "update" | "read", idlePeriodMs = 1000) {
  const clock = new PreemptedClock(T0 + 3);
  const nvml = new MemoryNvml(clock, gpus, stamps);
  const timers = new ManualTimers(clock);
  const readings: Reading[] = [];
  /** Each call of onReadings: when, how many readings, how many read durations. */
  const posts: Array<{ atMs: number; readings: number; reads: number }> = [];
  const loop = new ReadLoop(
    nvml,
    gpus.map((_, i) => plan(i)),
    {
      samplingPeriodMs: 100,
      idlePeriodMs,
      clock,
      timers,
      stamps: { update: () => undefined, toAgentMs: (us) => us / 1000 },
      onReadings: (batch, _energyReads, readMs) => {
        readings.push(...batch);
        posts.push({ atMs: clock.nowMs(), readings: batch.length, reads: readMs.length });
      },
    },
  );
  return { clock, nvml, timers, readings, posts, loop };
}

test("driver stamps that are update instants (value held, stamp held) are used as they are", (t) => {
  const { clock, nvml, timers, readings, loop } = setup([{ phaseMs: 37, powerW: 300 }], "update");
  loop.setActive(true);
  loop.start();
  timers.runUntil(clock.nowMs() + 3000);
  loop.stop();
  const late = readings.filter((r) => r.tMs > T0 + 1000);
  t.true(late.length >= 15, `${late.length} readings`);
  for (const r of late) {
    t.is(r.tMs, nvml.instantOf(0, r.counterJ!), "stamped at the instant the value became current");
    t.is(r.timeUncertaintyMs, undefined);
  }
});

test("read-time stamps (real drivers): the update grid is learnt, then every stamp holds the true instant within a few ms", (t) => {
  const { clock, nvml, timers, readings, loop } = setup(
    [
      { phaseMs: 61, powerW: 450 },
      { phaseMs: 13, powerW: 200 },
    ],
    "read",
  );
  loop.setActive(true);
  loop.start();
  timers.runUntil(clock.nowMs() + 5000);
  loop.stop();
  for (const gpu of [0, 1]) {
    const mine = readings.filter((r) => r.deviceId === `gpu:${gpu}` && r.tMs > T0 + 2000);
    t.true(mine.length >= 20, `gpu ${gpu}: ${mine.length} readings`);
    for (const r of mine) {
      const truth = nvml.instantOf(gpu, r.counterJ!);
      t.true(
        Math.abs(r.tMs - truth) <= r.timeUncertaintyMs! + 1e-9,
        `gpu ${gpu}: stamp ${r.tMs - T0} vs ${truth - T0} ± ${r.timeUncertaintyMs}`,
      );
      t.true(r.timeUncertaintyMs! <= 2 * READ_MS, `gpu ${gpu}: uncertainty ${r.timeUncertaintyMs} ms`);
    }
  }
});

test("idle: about one read per GPU per idle period, posted in batches; going active reads every GPU at once without straddling an update", (t) => {
  const { clock, nvml, timers, readings, posts, loop } = setup(
    [
      { phaseMs: 20, powerW: 300 },
      { phaseMs: 70, powerW: 300 },
    ],
    "read",
  );
  loop.start();
  timers.runUntil(T0 + 3000); // learn the grid at the sampling period first
  const idleFrom = clock.nowMs();
  const readsBefore = nvml.energyReads;
  const postsBefore = posts.length;
  timers.runUntil(idleFrom + 10_000);
  const idleReadsPerGpuPerS = (nvml.energyReads - readsBefore) / 2 / 10;
  // One measurement read per idle period, and a probe after about every other one (an idle grid may be a
  // few ms wider, and is checked every 10 s): each read is a wake-up of the worker.
  t.true(idleReadsPerGpuPerS >= 1 && idleReadsPerGpuPerS <= 1.6, `${idleReadsPerGpuPerS} reads per GPU per s while idle`);
  // Readings wait in the worker up to half the idle period, so the main thread wakes at most about twice
  // a second (not once per GPU read), and probes alone post nothing.
  const idlePosts = posts.slice(postsBefore).filter((p) => p.atMs > idleFrom + 1000);
  t.true(idlePosts.length <= 2 * 9 + 1, `${idlePosts.length} posts in 9 s of idle`);
  t.true(
    idlePosts.every((p) => p.readings > 0),
    "every post carries readings",
  );
  const published = readings.length;
  // Wake 2 ms before GPU 0's counter updates: a read started at once (4 ms) would straddle that update.
  const wokeAt = nvml.updateBefore(0, clock.nowMs()) + 2 * UPDATE_MS - 2;
  timers.runUntil(wokeAt);
  loop.setActive(true);
  timers.runUntil(wokeAt + 3 * READ_MS + UPDATE_MS / 10);
  const woken = readings.slice(published);
  t.deepEqual([...new Set(woken.map((r) => r.deviceId))].sort(), ["gpu:0", "gpu:1"], "every GPU is read at once");
  for (const gpu of [0, 1]) {
    const read = nvml.reads.find((r) => r.handle === gpu && r.startMs >= wokeAt)!;
    // At most past the learnt arc (an idle arc may be 4 ms wider than an active one) and one read queued before it.
    t.true(read.startMs - wokeAt <= 2 * READ_MS + 1 + 4, `gpu ${gpu}: read ${read.startMs - wokeAt} ms after the wake-up`);
    t.is(
      nvml.updateBefore(gpu, read.startMs),
      nvml.updateBefore(gpu, read.endMs),
      `gpu ${gpu}: the wake-up read does not straddle a counter update`,
    );
  }
  // And full rate from then on: ten measurement reads a second.
  const from = readings.length;
  timers.runUntil(clock.nowMs() + 2000);
  const perGpu = readings.slice(from).filter((r) => r.deviceId === "gpu:0").length / 2;
  t.true(perGpu >= 9 && perGpu <= 11, `${perGpu} readings per s when active`);
  // Every read's duration was posted (probes' too), none twice: at full rate each tick posts.
  t.is(
    posts.reduce((n, p) => n + p.reads, 0),
    nvml.reads.length,
  );
});

test("idle GPUs that share an update phase are read in one wake-up, not one each; every stamp still holds the truth", (t) => {
  const gpus = [0, 1, 2, 3].map(() => ({ phaseMs: 40, powerW: 300 }));
  const { clock, nvml, timers, readings, loop } = setup(gpus, "read");
  loop.start();
  timers.runUntil(T0 + 3000); // learn the grids
  const [from, readsBefore, wakeUpsBefore, publishedBefore] = [clock.nowMs(), nvml.energyReads, timers.fired, readings.length];
  timers.runUntil(from + 20_000);
  const reads = nvml.energyReads - readsBefore;
  const wakeUps = timers.fired - wakeUpsBefore;
  // 4 measurement reads a second (one per GPU) and the probes that keep the grids learnt, each probe after
  // a read of its own GPU within a period (that pair keeps its own wake-ups); the other measurement reads
  // share one (measured: 92 wake-ups for 120 reads; one per read, 119 for 125, before).
  t.true(reads >= 4 * 20 && reads <= 4 * 20 * 1.6, `${reads} reads in 20 s`);
  t.true(wakeUps <= 0.85 * reads, `${wakeUps} wake-ups for ${reads} reads`);
  const idle = readings.slice(publishedBefore);
  t.true(idle.length >= 4 * 19, `${idle.length} readings published`);
  for (const r of idle) {
    const gpu = Number(r.deviceId.split(":")[1]);
    const truth = nvml.instantOf(gpu, r.counterJ!);
    t.true(
      Math.abs(r.tMs - truth) <= r.timeUncertaintyMs! + 1e-9,
      `${r.deviceId}: stamp ${r.tMs - T0} vs ${truth - T0} ± ${r.timeUncertaintyMs}`,
    );
  }
  loop.stop();
});

test("an idle period equal to the sampling period is full rate: every reading is posted as it is read, none read early", (t) => {
  const gpus = [0, 1].map(() => ({ phaseMs: 40, powerW: 300 }));
  const { clock, timers, posts, loop } = setup(gpus, "read", 100);
  loop.start(); // never told it is active: with no idle period to go to, that makes no difference
  timers.runUntil(T0 + 2000);
  const [from, postsBefore] = [clock.nowMs(), posts.length];
  timers.runUntil(from + 3000);
  loop.stop();
  const mine = posts.slice(postsBefore);
  const readings = mine.reduce((n, p) => n + p.readings, 0);
  t.true(readings >= 2 * 10 * 3 * 0.9, `${readings} readings in 3 s`);
  // Both GPUs share a phase, so one tick reads both: one post per tick, none held for a later one.
  t.true(
    mine.every((p) => p.readings <= gpus.length),
    `posts of ${[...new Set(mine.map((p) => p.readings))].join(", ")} readings`,
  );
  t.true(mine.length >= readings / gpus.length, `${mine.length} posts for ${readings} readings`);
});

test("a busy CPU: timers fire late and reads stall inside the call, yet no published stamp is wide or wrong", (t) => {
  const { clock, nvml, timers, readings, loop } = setup(
    [
      { phaseMs: 61, powerW: 450 },
      { phaseMs: 13, powerW: 200 },
    ],
    "read",
  );
  loop.setActive(true);
  loop.start();
  timers.runUntil(clock.nowMs() + 2000); // learn the grids on an idle CPU
  const from = clock.nowMs();
  // Then every timer fires 0-80 ms late, one read in seven is held up 30-230 ms inside the call, and one
  // clock read in seventeen finds the thread was preempted for 5-25 ms (between deciding to read and reading, too).
  timers.lateness = (n) => (n * 37) % 81;
  nvml.stall = (n) => (n % 7 === 3 ? (n % 2 ? [30 + ((n * 53) % 200), 0] : [0, 30 + ((n * 53) % 200)]) : [0, 0]);
  clock.preemptMs = (n) => (n % 17 === 5 ? 5 + ((n * 29) % 21) : 0);
  timers.runUntil(from + 20_000);
  loop.stop();
  for (const gpu of [0, 1]) {
    const mine = readings.filter((r) => r.deviceId === `gpu:${gpu}` && r.tMs > from);
    t.true(mine.length >= 60, `gpu ${gpu}: ${mine.length} readings`);
    for (const r of mine) {
      const truth = nvml.instantOf(gpu, r.counterJ!);
      t.true(
        Math.abs(r.tMs - truth) <= r.timeUncertaintyMs! + 1e-9,
        `gpu ${gpu}: stamp ${r.tMs - T0} vs ${truth - T0} ± ${r.timeUncertaintyMs}`,
      );
    }
    // Late probes leave the learnt grid wider (up to about a fifth of a period); a straddled or stalled read
    // published as it is would be stamped about half a period either way.
    const wide = mine.filter((r) => r.timeUncertaintyMs! > UPDATE_MS / 4);
    t.is(wide.length, 0, `gpu ${gpu}: wide stamps ${wide.map((r) => r.timeUncertaintyMs!.toFixed(1)).join(" ")}`);
  }
});
