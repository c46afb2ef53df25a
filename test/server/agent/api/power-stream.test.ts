/**
 * WatchPower through real gRPC against the fake libnvidia-ml.so.1 (two GPUs at constant 300 W and 500 W)
 * and a fake powercap tree, plus the hub alone with a fake call where exact backpressure matters.
 */
import { EventEmitter } from "node:events";
import { status, type ClientReadableStream, type ServerWritableStream, type ServiceError } from "@grpc/grpc-js";
import test, { type ExecutionContext } from "ava";
import { ManualClock } from "../../../../server/shared/clock.js";
import { type EnergyMonitorClient, PowerSample, type WatchPowerRequest } from "../../../../proto/gen/carbonmon/agent/v1/agent.js";
import type { Device, EnergySource } from "../../../../server/agent/devices/energy-source.js";
import { PowerHub } from "../../../../server/agent/api/power-stream.js";
import { Sampler } from "../../../../server/agent/energy/sampler.js";
import { silentLogger } from "../../../../server/shared/log.js";
import { durationFromMs } from "../../../../server/shared/proto-time.js";
import { createAgentClient } from "../../../../client/index.js";
import { fakeNvml } from "../../../helpers/fake-nvml.js";
import { startTestAgent, type TestAgent } from "../../../helpers/grpc.js";
import { intelTwoSocketTree } from "../../../helpers/powercap.js";

const GPU_POWER_W = [300, 500];

type PowerStream = ClientReadableStream<PowerSample>;
interface Received {
  sample: PowerSample;
}

async function agentWithGpus(t: { teardown(fn: () => unknown): void }, env: Record<string, string> = {}): Promise<TestAgent> {
  const nvml = fakeNvml({ gpus: GPU_POWER_W.map((powerW, i) => ({ uuid: `GPU-${i}`, profile: [{ powerW, ms: 1000 }] })) });
  const tree = intelTwoSocketTree();
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_POWERCAP_ROOT: tree.root,
    CARBONMON_SAMPLING_PERIOD_MS: "100",
    ...env,
  });
  t.teardown(async () => (await agent.close(), nvml.cleanup(), tree.cleanup()));
  return agent;
}

function watch(client: EnergyMonitorClient, request: Partial<WatchPowerRequest> = {}): PowerStream {
  return client.watchPower({ gpuIndices: [], cpuIndices: [], skipGpus: false, skipCpus: false, ...request });
}

/** The first n samples, with their arrival times; the stream is cancelled afterwards. */
function take(stream: PowerStream, n: number): Promise<Received[]> {
  const got: Received[] = [];
  return new Promise((resolve, reject) => {
    stream.on("data", (sample: PowerSample) => {
      got.push({ sample });
      if (got.length === n) stream.cancel(), resolve(got);
    });
    stream.on("error", (err: ServiceError) => (err.code === status.CANCELLED ? undefined : reject(err)));
  });
}

/** The status a stream ends with. */
function statusOf(stream: PowerStream): Promise<ServiceError> {
  return new Promise((resolve) => stream.on("error", resolve).on("data", () => undefined));
}

async function until(condition: () => boolean, timeoutMs = 2000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return condition();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const groupCount = (hub: PowerHub): number => (hub as unknown as { groups: Map<number, unknown> }).groups.size;

test("the first sample comes at once, then one per period, numbered; powers per device, growing energies", async (t) => {
  const agent = await agentWithGpus(t);
  await sleep(300); // the sampler's first readings
  const got = await take(watch(agent.client, { period: durationFromMs(300) }), 5);
  t.deepEqual(
    got.map((r) => r.sample.sequence),
    [0n, 1n, 2n, 3n, 4n],
  );
  t.true(got.every((r) => r.sample.skipped === 0n && !r.sample.simulated));
  const spanMs = got[4]!.sample.time!.getTime() - got[0]!.sample.time!.getTime();
  t.true(spanMs > 4 * 300 * 0.7 && spanMs < 4 * 300 * 1.5, `4 periods took ${spanMs} ms`);
  for (const { sample } of got) {
    t.deepEqual(Object.keys(sample.gpuPowerW), ["0", "1"]);
    t.is(sample.gpuPowerW[0], 300);
    t.is(sample.gpuPowerW[1], 500);
    t.deepEqual(Object.keys(sample.gpuTemperatureC), ["0", "1"]);
    t.deepEqual(Object.keys(sample.cpuEnergyJ), ["0", "1"]);
    t.deepEqual(Object.keys(sample.dramEnergyJ), ["0", "1"]);
  }
  const energies = got.map((r) => r.sample.gpuEnergyJ);
  t.deepEqual(energies[0], { 0: 0, 1: 0 });
  for (let i = 1; i < energies.length; i++) t.true(energies[i]![0]! > energies[i - 1]![0]! && energies[i]![1]! > energies[i - 1]![1]!);
  // 300 W and 500 W from the first sample to the last, within a sampling period's worth.
  const lifeS = spanMs / 1000;
  t.true(Math.abs(energies[4]![0]! - 300 * lifeS) < 300 * 0.25, `GPU 0: ${energies[4]![0]} J in ${lifeS} s`);
  t.true(Math.abs(energies[4]![1]! - 500 * lifeS) < 500 * 0.25, `GPU 1: ${energies[4]![1]} J in ${lifeS} s`);
});

test("the first sample does not wait for the period: with a one-hour period it still comes at once", async (t) => {
  const agent = await agentWithGpus(t);
  await sleep(300);
  // The next sample after the first is an hour away, so receiving one at all shows it was not waited for.
  const got = await take(watch(agent.client, { skipCpus: true, period: durationFromMs(3_600_000) }), 1);
  t.is(got[0]!.sample.sequence, 0n);
  t.deepEqual(Object.keys(got[0]!.sample.gpuPowerW).sort(), ["0", "1"]);
  t.deepEqual(got[0]!.sample.cpuPowerW, {});
});

test("a period below the sampling period, above 1 hour, or an unknown GPU is INVALID_ARGUMENT", async (t) => {
  const agent = await agentWithGpus(t);
  const below = await statusOf(watch(agent.client, { period: durationFromMs(50) }));
  t.is(below.code, status.INVALID_ARGUMENT);
  t.regex(below.details, /period 50 ms is below the sampling period 100 ms: the hardware updates no faster/);
  const above = await statusOf(watch(agent.client, { period: durationFromMs(3_600_001) }));
  t.is(above.code, status.INVALID_ARGUMENT);
  t.regex(above.details, /above the maximum/);
  const unknown = await statusOf(watch(agent.client, { gpuIndices: [7] }));
  t.is(unknown.code, status.INVALID_ARGUMENT);
  const unknownCpu = await statusOf(watch(agent.client, { cpuIndices: [5] }));
  t.is(unknownCpu.code, status.INVALID_ARGUMENT);
  t.regex(unknownCpu.details, /no CPU package 5/);
  t.is(agent.context.power.streams, 0);
});

test("GPU indices are the caller's: with CUDA_VISIBLE_DEVICES 1,0, index 1 is NVML GPU 0", async (t) => {
  const agent = await agentWithGpus(t);
  await sleep(300);
  const [first] = await take(watch(agent.client, { gpuIndices: [1], cudaVisibleDevices: "1,0", skipCpus: true }), 1);
  t.deepEqual(first!.sample.gpuPowerW, { 1: GPU_POWER_W[0] });
  t.deepEqual(Object.keys(first!.sample.gpuEnergyJ), ["1"]);
  t.deepEqual(first!.sample.cpuPowerW, {});
});

test("200 watchers all get samples and cost no more hardware reads than one: the sources are told once to read at full rate", (t) => {
  // Watchers read the sampler's timelines only; the one way they reach the hardware is the demand for
  // full-rate sampling, which the first watcher raises and the others leave as it is. Driven by hand: a
  // manual clock and the hub's own tick (bench/agent.ts measures the real NVML reads: ×1.00 with 1,000).
  const clock = new ManualClock(1_764_000_000_000);
  const device: Device = { id: "gpu:0", domain: "gpu", index: 0, name: "fake", hasEnergyCounter: false, status: "ok", simulated: false };
  const told: boolean[] = [];
  const source: EnergySource = {
    name: "fake",
    state: () => ({ name: "fake", status: "ok" }),
    devices: () => [device],
    start: () => undefined,
    stop: async () => undefined,
    setActive: (active) => void told.push(active),
  };
  const sampler = new Sampler([source], { clock });
  sampler.ingest([{ deviceId: "gpu:0", tMs: clock.nowMs() - 10, powerW: 250, temperatureC: 40 }]);
  const hub = new PowerHub(sampler, { config: { samplingPeriodMs: 10, cudaVisibleDevices: undefined }, log: silentLogger() });
  t.teardown(() => hub.close());
  const calls = Array.from({ length: 200 }, () => new FakeCall(request(100)));
  hub.watch(asCall(calls[0]!));
  t.deepEqual(told, [true], "one watcher: the sources go to full rate");
  for (const call of calls.slice(1)) hub.watch(asCall(call));
  t.deepEqual(told, [true], "199 more: nothing more is asked of the sources");
  const tick = (hub as unknown as { tick(g: unknown): void }).tick.bind(hub);
  const group = (hub as unknown as { groups: Map<number, unknown> }).groups.get(100);
  for (let k = 0; k < 10; k++) {
    clock.advance(100);
    sampler.ingest([{ deviceId: "gpu:0", tMs: clock.nowMs(), powerW: 250 + k, temperatureC: 40 }]);
    tick(group);
  }
  t.true(
    calls.every((c) => c.written.length === 11),
    `samples per watcher: ${[...new Set(calls.map((c) => c.written.length))].join(", ")} (1 on joining + 10 ticks)`,
  );
  t.true(
    calls.every((c) => c.written.at(-1)!.gpuPowerW[0] === 259),
    "each got the latest tick's power",
  );
  for (const call of calls) call.emit("close");
  t.is(hub.streams, 0);
  t.deepEqual(told, [true, false], "the last one gone: back to the idle rate");
});

test("cancelling frees every stream and the group's timer at once", async (t) => {
  const agent = await agentWithGpus(t);
  const streams = [100, 100, 200, 300].map((ms) => watch(agent.client, { period: durationFromMs(ms) }));
  for (const s of streams) s.on("data", () => undefined).on("error", () => undefined);
  t.true(await until(() => agent.context.power.streams === 4, 5000));
  t.is(groupCount(agent.context.power), 3);
  streams[0]!.cancel();
  t.true(await until(() => agent.context.power.streams === 3));
  t.is(groupCount(agent.context.power), 3, "the 100 ms group keeps its other stream");
  for (const s of streams.slice(1)) s.cancel();
  t.true(await until(() => agent.context.power.streams === 0), `${agent.context.power.streams} streams left`);
  t.is(groupCount(agent.context.power), 0);
});

/**
 * Records the agent-clock time of every tick of the hub (one period group in these tests), so that each
 * received sample can be matched to its tick and each `skipped` checked against the ticks that passed.
 */
/**
 * Counts the hub's ticks for the agent's one stream, and the ticks at which that stream was sent a sample.
 * (Matching samples to ticks by their times is ambiguous: a busy event loop bunches ticks within a millisecond.)
 */
function recordTicks(agent: TestAgent): { count: number; sentAt: number[] } {
  type Group = { streams: Set<{ sent: number }> };
  const hub = agent.context.power as unknown as { tick(group: Group): void };
  const tick = hub.tick.bind(hub);
  const record = { count: 0, sentAt: [] as number[] };
  hub.tick = (group) => {
    const stream = group.streams.values().next().value;
    const before = stream?.sent ?? 0;
    tick(group);
    if (stream && stream.sent > before) record.sentAt.push(record.count);
    record.count++;
  };
  return record;
}

/** For consecutive samples sent at ticks: `skipped` is exactly the number of ticks between them. */
function assertSkippedCountsTicks(t: ExecutionContext, ticks: { sentAt: readonly number[] }, samples: readonly PowerSample[]): void {
  // Sample 0 is the one sent when the stream opened, not at a tick: sample n (its sequence) was sent at
  // tick sentAt[n - 1]. The samples need not be consecutive (the TypeScript client keeps only the latest).
  const sentAt = (s: PowerSample) => ticks.sentAt[Number(s.sequence) - 1]!;
  for (let i = 1; i < samples.length; i++) {
    if (samples[i - 1]!.sequence === 0n) continue;
    const between = sentAt(samples[i]!) - sentAt(samples[i - 1]!) - 1;
    if (between !== Number(samples[i]!.skipped)) {
      t.fail(`sample ${samples[i]!.sequence}: skipped ${samples[i]!.skipped}, but ${between} ticks passed since the previous one`);
      return;
    }
  }
  t.pass();
}

const serverStream = (agent: TestAgent) =>
  [...(agent.context.power as unknown as { groups: Map<number, { streams: Set<{ skipped: number }> }> }).groups.values()][0]?.streams
    .values()
    .next().value as { skipped: number } | undefined;

test("a paused reader: the agent holds at most one unsent sample and counts the rest; after what the flow-control window held, the latest sample says what was missed", async (t) => {
  // 10 ms periods fill the reader's 64 KiB window (grpc-js's default) within seconds.
  const agent = await agentWithGpus(t, { CARBONMON_SAMPLING_PERIOD_MS: "10" });
  const ticks = recordTicks(agent);
  const stream = watch(agent.client, { period: durationFromMs(10) });
  const got: PowerSample[] = [];
  const bytes: number[] = [];
  stream.on("data", (s: PowerSample) => (got.push(s), bytes.push(PowerSample.encode(s).finish().length))).on("error", () => undefined);
  t.true(await until(() => got.length > 5));
  stream.pause();
  let maxBuffered = 0;
  const buffered = () => (maxBuffered = Math.max(maxBuffered, agent.context.power.bufferedSamples));
  // The window fills, then the agent counts ticks instead of writing: wait for 100 of them.
  t.true(await until(() => (buffered(), (serverStream(agent)?.skipped ?? 0) >= 100), 30_000), "the agent never skipped");
  const receivedBeforeResume = got.length;
  const resumedAtMs = agent.context.sampler.now();
  stream.resume();
  // The sample that follows what the transport held carries the ≥ 100 ticks counted while the window was
  // full. (A busy machine may also skip a tick or two earlier, while a write is still being sent.)
  const caughtUp = () => got.findIndex((s) => s.skipped >= 100n);
  t.true(await until(() => caughtUp() >= 0 && got.length > caughtUp() + 10, 10_000), `${got.length} received, none with skipped >= 100`);
  stream.cancel();

  t.true(maxBuffered <= 1, `${maxBuffered} samples unsent in the agent (at most one per stream)`);
  t.deepEqual(
    got.map((s) => s.sequence),
    got.map((_, i) => BigInt(i)),
    "the transport loses nothing it was given: sequence numbers have no gaps",
  );
  assertSkippedCountsTicks(t, ticks, got);
  const first = caughtUp();
  // What reached the reader after it resumed but before the latest sample: what the transport held.
  const stale = got.slice(receivedBeforeResume, first);
  const staleBytes = bytes.slice(receivedBeforeResume, first).reduce((a, b) => a + b + 5, 0); // + gRPC's 5-byte frame header
  // The reader's 64 KiB stream window, Node's 16 KiB Http2Stream read buffer and grpc-js's 16 decoded messages, and no more.
  const boundBytes = 65_535 + 16_384 + 16 * (Math.max(...bytes) + 5);
  t.true(staleBytes <= boundBytes, `${stale.length} stale samples, ${staleBytes} bytes, above the bound ${boundBytes}`);
  t.log(`paused reader: ${stale.length} samples (${staleBytes} bytes) held by the transport; then skipped ${got[first]!.skipped}`);
  t.true(got[first]!.time!.getTime() >= resumedAtMs - 10, "the sample after them is one the agent took after the reader resumed");
});

test("the TypeScript client never lets samples go stale: a consumer that stops taking them gets the latest, its skipped counting every tick it missed", async (t) => {
  const agent = await agentWithGpus(t, { CARBONMON_SAMPLING_PERIOD_MS: "10" });
  const ticks = recordTicks(agent);
  const client = createAgentClient(agent.running.address, { cudaVisibleDevices: null });
  t.teardown(() => client.close());
  const samples = client.watchPower({ periodMs: 10 })[Symbol.asyncIterator]();
  const got: PowerSample[] = [];
  for (let i = 0; i < 5; i++) got.push((await samples.next()).value as PowerSample);
  // The consumer takes nothing while 300 ticks pass (3 s of samples; the stream's window is 64 KiB).
  const pausedAtTick = ticks.count;
  t.true(await until(() => ticks.count >= pausedAtTick + 300, 30_000));
  const resumedAtMs = agent.context.sampler.now();
  for (let i = 0; i < 5; i++) got.push((await samples.next()).value as PowerSample);
  await samples.return?.(undefined);

  const next = got[5]!;
  t.true(next.time!.getTime() >= resumedAtMs - 20, `the first sample after the pause is ${resumedAtMs - next.time!.getTime()} ms old`);
  // Most of the 300 ticks were folded into it (the last few may arrive after the consumer resumed, and be
  // taken on their own); assertSkippedCountsTicks checks every tick is counted exactly once.
  t.true(next.skipped >= 250n, `skipped ${next.skipped}`);
  assertSkippedCountsTicks(t, ticks, got);
  t.true(await until(() => agent.context.power.streams === 0), "leaving the loop cancels the stream");
});

test("shutdown ends open streams with UNAVAILABLE and refuses new ones", async (t) => {
  const agent = await agentWithGpus(t);
  const stream = watch(agent.client, { period: durationFromMs(100) });
  const ended = statusOf(stream);
  t.true(await until(() => agent.context.power.streams === 1, 5000));
  const shutdown = agent.running.shutdown(2000);
  const err = await ended;
  t.is(err.code, status.UNAVAILABLE);
  t.regex(err.details, /agent shutting down/);
  t.is(agent.context.power.streams, 0);
  await shutdown;
  t.is(groupCount(agent.context.power), 0);
});

// The hub alone, with a fake call whose write() reports backpressure on demand.

/** A call whose transport takes what is written at once, unless `accepting` is false: then it stays unsent (writableLength). */
class FakeCall extends EventEmitter {
  cancelled = false;
  accepting = true;
  written: PowerSample[] = [];
  writableLength = 0;
  errors: Array<{ code?: number; details?: string }> = [];
  constructor(readonly request: WatchPowerRequest) {
    super();
    this.on("error", (err: { code?: number; details?: string }) => this.errors.push(err));
  }
  /** The hub writes encoded samples (the shared part of a tick, then the stream's own fields). */
  write(bytes: Uint8Array): boolean {
    this.written.push(PowerSample.decode(bytes));
    if (!this.accepting) this.writableLength++;
    return this.writableLength < 16;
  }
  /** The transport takes what was unsent. */
  drained(): void {
    this.accepting = true;
    this.writableLength = 0;
    this.emit("drain");
  }
}

/** One fake GPU ("gpu:0") that pushes nothing by itself: tests ingest its readings by hand. */
function fakeGpuSource(simulated: boolean, setActive?: (active: boolean) => void): EnergySource {
  const device: Device = { id: "gpu:0", domain: "gpu", index: 0, name: "fake", hasEnergyCounter: false, status: "ok", simulated };
  return {
    name: "fake",
    state: () => ({ name: "fake", status: "ok" }),
    devices: () => [device],
    start: () => undefined,
    stop: async () => undefined,
    ...(setActive ? { setActive } : {}),
  };
}

function hubWithOneGpu(): { hub: PowerHub; sampler: Sampler } {
  const source = fakeGpuSource(true);
  const sampler = new Sampler([source]);
  const t0 = sampler.now();
  sampler.ingest([{ deviceId: "gpu:0", tMs: t0 - 20, powerW: 250, temperatureC: 40 }]);
  sampler.ingest([{ deviceId: "gpu:0", tMs: t0 - 10, powerW: 250, temperatureC: 40 }]);
  const hub = new PowerHub(sampler, { config: { samplingPeriodMs: 10, cudaVisibleDevices: undefined }, log: silentLogger() });
  return { hub, sampler };
}

const request = (periodMs: number): WatchPowerRequest => ({
  gpuIndices: [],
  cpuIndices: [],
  period: durationFromMs(periodMs),
  skipGpus: false,
  skipCpus: false,
});
const asCall = (call: FakeCall) => call as unknown as ServerWritableStream<WatchPowerRequest, Uint8Array>;

test("hub: a stream whose last sample is unsent is not written to; then it gets the latest sample with the skipped count", async (t) => {
  const { hub } = hubWithOneGpu();
  t.teardown(() => hub.close());
  const call = new FakeCall(request(10));
  hub.watch(asCall(call));
  t.is(call.written.length, 1);
  t.like(call.written[0], { sequence: 0n, skipped: 0n, simulated: true, gpuPowerW: { 0: 250 }, gpuTemperatureC: { 0: 40 } });
  t.true(await until(() => call.written.length >= 3));
  call.accepting = false;
  const blockedAt = call.written.length + 1; // this write stays unsent (a full flow-control window)
  t.true(await until(() => call.written.length === blockedAt));
  await sleep(200);
  t.is(call.written.length, blockedAt, "nothing written while a sample is unsent");
  t.is(hub.bufferedSamples, 1);
  call.drained();
  t.true(await until(() => call.written.length === blockedAt + 1));
  const resumed = call.written[blockedAt]!;
  t.is(resumed.sequence, BigInt(blockedAt));
  const gapMs = resumed.time!.getTime() - call.written[blockedAt - 1]!.time!.getTime();
  t.true(gapMs > 150, "the latest sample, not an old one");
  // Every tick that passed while blocked is counted, and no more than the ticks that passed.
  t.true(resumed.skipped >= 1n && Number(resumed.skipped) <= gapMs / 10, `skipped ${resumed.skipped} in ${gapMs} ms`);
  call.emit("cancelled");
  t.is(hub.streams, 0);
  t.is(groupCount(hub), 0);
});

test("hub: groups by period, one read per device per tick whatever the number of streams", async (t) => {
  const { hub, sampler } = hubWithOneGpu();
  t.teardown(() => hub.close());
  let snapshots = 0;
  const snapshot = sampler.snapshot.bind(sampler);
  sampler.snapshot = (id) => (snapshots++, snapshot(id));
  const calls = Array.from({ length: 50 }, (_, i) => new FakeCall(request(i % 2 ? 20 : 40)));
  for (const call of calls) hub.watch(asCall(call));
  t.is(hub.streams, 50);
  t.is(groupCount(hub), 2);
  snapshots = 0;
  await sleep(200);
  // About 10 ticks at 20 ms and 5 at 40 ms, one snapshot each: far from 50 streams x ticks.
  t.true(snapshots > 0 && snapshots <= 25, `${snapshots} snapshot reads`);
  t.true(calls.every((c) => c.written.length >= 2));
  for (const call of calls) call.emit("close");
  t.is(hub.streams, 0);
  t.is(groupCount(hub), 0);
});

test("hub: close ends every stream with UNAVAILABLE and refuses new ones", (t) => {
  const { hub } = hubWithOneGpu();
  const open = new FakeCall(request(10));
  hub.watch(asCall(open));
  hub.close();
  t.is(hub.streams, 0);
  t.is(groupCount(hub), 0);
  t.like(open.errors[0], { code: status.UNAVAILABLE, details: "agent shutting down" });
  const late = new FakeCall(request(10));
  hub.watch(asCall(late));
  t.like(late.errors[0], { code: status.UNAVAILABLE, details: "agent shutting down" });
  t.is(late.written.length, 0);
  t.is(hub.streams, 0);
});

test("hub: streams watching the same devices share each tick's time and power; sequence and energy since begin are their own", (t) => {
  // A manual clock: the test moves time, and drives the tick itself.
  const clock = new ManualClock(1_764_000_000_000);
  const source = fakeGpuSource(false);
  const sampler = new Sampler([source], { clock });
  sampler.ingest([{ deviceId: "gpu:0", tMs: clock.nowMs() - 10, powerW: 250, temperatureC: 40 }]);
  const hub = new PowerHub(sampler, { config: { samplingPeriodMs: 10, cudaVisibleDevices: undefined }, log: silentLogger() });
  t.teardown(() => hub.close());
  const early = new FakeCall(request(1000));
  hub.watch(asCall(early));
  clock.advance(1000);
  sampler.ingest([{ deviceId: "gpu:0", tMs: clock.nowMs(), powerW: 250, temperatureC: 41 }]);
  const late = new FakeCall(request(1000));
  hub.watch(asCall(late));
  clock.advance(1000);
  sampler.ingest([{ deviceId: "gpu:0", tMs: clock.nowMs(), powerW: 300, temperatureC: 42 }]);
  (hub as unknown as { tick(g: unknown): void }).tick((hub as unknown as { groups: Map<number, unknown> }).groups.get(1000));
  const a = early.written.at(-1)!;
  const b = late.written.at(-1)!;
  t.is(early.written.length, 2);
  t.is(late.written.length, 2);
  t.deepEqual(a.time, new Date(clock.nowMs()));
  t.deepEqual(b.time, a.time);
  t.deepEqual(a.gpuPowerW, { 0: 300 });
  t.deepEqual(b.gpuPowerW, a.gpuPowerW);
  t.deepEqual(b.gpuTemperatureC, { 0: 42 });
  t.is(a.sequence, 1n);
  t.is(b.sequence, 1n);
  // 250 W for 1 s, then 250 -> 300 W (trapezoid) for 1 s: 250 + 275 J for the early stream, 275 J for the late one.
  t.is(a.gpuEnergyJ[0], 525);
  t.is(b.gpuEnergyJ[0], 275);
  // Each sample is exactly what a PowerSample with those fields encodes to.
  t.deepEqual(PowerSample.decode(PowerSample.encode(a).finish()), a);
});
