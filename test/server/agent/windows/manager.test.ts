/**
 * Windows over real gRPC against the fake NVML (scripted profiles: the truth) and a fake powercap tree.
 * Instants: the agent's begin_time/end_time are whole milliseconds on the wire, so truth is computed over
 * them and compared within the reported uncertainty plus 1 ms of the highest power.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import test from "ava";
import { TimeTravel } from "../../../helpers/time-travel.js";
import {
  ApproximationKind,
  CarbonStatus,
  DeviceDomain,
  type BeginWindowRequest,
  type BeginWindowResponse,
  type CancelWindowRequest,
  type CancelWindowResponse,
  type EndWindowRequest,
  type GetHostRequest,
  type GetHostResponse,
  type GetWindowRequest,
  type ListWindowsRequest,
  type ListWindowsResponse,
  type Measurement,
} from "../../../../proto/gen/carbonmon/agent/v1/agent.js";
import { fakeNvml, profileEnergyJ, type Segment } from "../../../helpers/fake-nvml.js";
import { call, startTestAgent, tempDataDir, type TestAgent, beginWindow } from "../../../helpers/grpc.js";
import { intelTwoSocketTree } from "../../../helpers/powercap.js";

const P0: Segment[] = [
  { powerW: 700, ms: 500 },
  { powerW: 100, ms: 500 },
];
const P1: Segment[] = [{ powerW: 300, ms: 1000 }];
const MS_TOLERANCE_J = 0.7 * 1.5; // 1.5 ms of wire rounding at 700 W

function begin(agent: TestAgent, req: Partial<BeginWindowRequest>): Promise<BeginWindowResponse> {
  return beginWindow(agent.client, {
    ...req,
  });
}
const end = (agent: TestAgent, key: string, wait = false) =>
  call<EndWindowRequest, Measurement>(agent.client, agent.client.endWindow, { key, waitForCounterUpdate: wait });
const get = (agent: TestAgent, key: string) => call<GetWindowRequest, Measurement>(agent.client, agent.client.getWindow, { key });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function agentWithHardware(extra: Record<string, string> = {}) {
  const epochMs = Math.floor(Date.now() / 1000) * 1000 - 60_000;
  const nvml = fakeNvml({
    gpus: [
      { profile: P0, uuid: "GPU-aaaa" },
      { profile: P1, uuid: "GPU-bbbb" },
    ],
    epochMs,
  });
  const tree = intelTwoSocketTree();
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath, CARBONMON_POWERCAP_ROOT: tree.root, ...extra });
  // Let the worker learn the counters' update instants before measuring.
  await sleep(1500);
  const truth = (profile: Segment[], m: Measurement) => profileEnergyJ(profile, epochMs, m.beginTime!.getTime(), m.endTime!.getTime());
  return { agent, truth, cleanup: async () => (await agent.close(), nvml.cleanup(), tree.cleanup()) };
}

test("a window reports its labels, GPUs' UUIDs, CPU and DRAM domains, a disabled carbon status and a total that sums its parts; a window inside one counter update is flagged short (accuracy in real time: test/e2e/window-accuracy.test.ts)", async (t) => {
  const { agent, cleanup } = await agentWithHardware();
  t.teardown(cleanup);
  await begin(agent, { key: "one-second", labels: { step: "1" } });
  await sleep(1000);
  const one = await end(agent, "one-second", true);
  // A window with no counter update inside is flagged short. Begun 20 ms after an update (the fake's grid:
  // every 100 ms from a whole second) and ended at once, it holds none unless the machine stalls the two
  // calls past the next update: then another try.
  let short: Measurement | undefined;
  for (let i = 0; i < 5 && !short?.approximations.some((a) => a.kind === ApproximationKind.APPROXIMATION_KIND_SHORT_WINDOW); i++) {
    await sleep(100 - ((Date.now() - 20) % 100));
    await begin(agent, { key: `short-${i}` });
    short = await end(agent, `short-${i}`, true);
  }
  t.deepEqual(one.labels, { step: "1" });
  t.true(one.ended);
  t.deepEqual(one.gpuUuids, { 0: "GPU-aaaa", 1: "GPU-bbbb" });
  t.deepEqual(Object.keys(one.gpuEnergyJ).sort(), ["0", "1"]);
  t.deepEqual(Object.keys(one.cpuEnergyJ).sort(), ["0", "1"]);
  t.deepEqual(Object.keys(one.dramEnergyJ).sort(), ["0", "1"]);
  t.is(one.carbonStatus, CarbonStatus.CARBON_STATUS_DISABLED);
  t.regex(one.carbonStatusReason, /CARBONMON_INTENSITY_ADDR/);
  t.true(short!.approximations.some((a) => a.kind === ApproximationKind.APPROXIMATION_KIND_SHORT_WINDOW));
  t.is(
    one.totalEnergyJ,
    Object.values(one.gpuEnergyJ)
      .concat(Object.values(one.cpuEnergyJ), Object.values(one.dramEnergyJ))
      .reduce((a, b) => a + b, 0),
  );
});

test("subsets: a GPU by the caller's CUDA_VISIBLE_DEVICES, no CPUs", async (t) => {
  const { agent, truth, cleanup } = await agentWithHardware();
  t.teardown(cleanup);
  const b = await begin(agent, { key: "subset", gpuIndices: [0], cudaVisibleDevices: "1,0", skipCpus: true });
  t.deepEqual(b.gpuIndices, [0]);
  t.deepEqual(b.nvmlGpuIndices, [1]);
  await sleep(1000);
  const m = await end(agent, "subset", true);
  t.deepEqual(Object.keys(m.gpuEnergyJ), ["0"]);
  t.true(
    Math.abs(m.gpuEnergyJ[0]! - truth(P1, m)) <= m.gpuEnergyUncertaintyJ[0]! + MS_TOLERANCE_J,
    "framework GPU 0 is NVML GPU 1 (300 W)",
  );
  t.deepEqual(m.cpuEnergyJ, {});
  t.is(m.cpuUnavailableReason, "not requested (skip_cpus)");
});

test("EndWindow is idempotent and GetWindow returns running totals, then the stored result", async (t) => {
  const { agent, cleanup } = await agentWithHardware();
  t.teardown(cleanup);
  await begin(agent, { key: "idem" });
  await sleep(300);
  const running = await get(agent, "idem");
  t.false(running.ended);
  t.true(running.gpuEnergyJ[0]! > 0);
  const first = await end(agent, "idem");
  const again = await end(agent, "idem");
  t.deepEqual(again, first);
  t.deepEqual(await get(agent, "idem"), first);
  // Concurrent EndWindow calls for one key share one result.
  await begin(agent, { key: "race" });
  const [a, b] = await Promise.all([end(agent, "race", true), end(agent, "race", true)]);
  t.deepEqual(a, b);
});

test("the status table: bad keys, duplicates, unknown keys and devices, the open-window limit", async (t) => {
  const { agent, cleanup } = await agentWithHardware({ CARBONMON_MAX_OPEN_WINDOWS: "3" });
  t.teardown(cleanup);
  const code = async (p: Promise<unknown>) => ((await t.throwsAsync(p)) as ServiceError).code;
  t.is(await code(begin(agent, { key: "" })), status.INVALID_ARGUMENT);
  t.is(await code(begin(agent, { key: "has space" })), status.INVALID_ARGUMENT);
  t.is(await code(begin(agent, { key: "x".repeat(129) })), status.INVALID_ARGUMENT);
  t.is(await code(begin(agent, { key: "gpu9", gpuIndices: [9] })), status.INVALID_ARGUMENT);
  t.is(await code(begin(agent, { key: "cpu7", cpuIndices: [7] })), status.INVALID_ARGUMENT);
  t.is(await code(begin(agent, { key: "mig", cudaVisibleDevices: "MIG-1234" })), status.INVALID_ARGUMENT);
  t.is(
    await code(begin(agent, { key: "labels", labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`l${i}`, "v"])) })),
    status.INVALID_ARGUMENT,
  );
  await begin(agent, { key: "a" });
  const dup = (await t.throwsAsync(begin(agent, { key: "a" }))) as ServiceError;
  t.is(dup.code, status.ALREADY_EXISTS);
  t.regex(dup.details, /window 'a' is already open/);
  await begin(agent, { key: "b" });
  await begin(agent, { key: "c" });
  t.is(await code(begin(agent, { key: "d" })), status.RESOURCE_EXHAUSTED);
  t.is(await code(end(agent, "never")), status.NOT_FOUND);
  t.is(await code(get(agent, "never")), status.NOT_FOUND);
  const cancel = (key: string) => call<CancelWindowRequest, CancelWindowResponse>(agent.client, agent.client.cancelWindow, { key });
  t.is((await cancel("c")).key, "c");
  t.is(await code(cancel("c")), status.NOT_FOUND);
  t.is(await code(end(agent, "c")), status.NOT_FOUND, "a cancelled window has no result");
  const list = await call<ListWindowsRequest, ListWindowsResponse>(agent.client, agent.client.listWindows, { includeEnded: false });
  t.deepEqual(list.windows.map((w) => w.key).sort(), ["a", "b"]);
  const host = await call<GetHostRequest, GetHostResponse>(agent.client, agent.client.getHost, {});
  t.is(host.openWindows, 2);
  // The key can be reused once the window has ended; the old result stays until then.
  await end(agent, "a");
  await begin(agent, { key: "a" });
  const listAll = await call<ListWindowsRequest, ListWindowsResponse>(agent.client, agent.client.listWindows, { includeEnded: true });
  t.is(listAll.windows.filter((w) => w.key === "a").length, 2);
});

test("CancelWindow on a window that EndWindow is waiting on is FAILED_PRECONDITION; the ended result is stored", async (t) => {
  // Read once a second: EndWindow with wait_for_counter_update then waits up to a second for every device.
  const { agent, cleanup } = await agentWithHardware({ CARBONMON_SAMPLING_PERIOD_MS: "1000" });
  t.teardown(cleanup);
  await begin(agent, { key: "k" });
  const ending = end(agent, "k", true);
  await sleep(5);
  const cancelled = (await t.throwsAsync(
    call<CancelWindowRequest, CancelWindowResponse>(agent.client, agent.client.cancelWindow, { key: "k" }),
  )) as ServiceError;
  t.is(cancelled.code, status.FAILED_PRECONDITION);
  t.regex(cancelled.details, /window 'k' is being ended/);
  const m = await ending;
  t.true(m.ended);
  t.deepEqual(await get(agent, "k"), m, "the answered result is the stored one");
});

test("a GPU lost during a window: the window ends with the rest and says which device is missing", async (t) => {
  // The loss is scripted an hour out and reached by time travel once the window has begun and is measured.
  const epochMs = Date.now();
  const travel = new TimeTravel(epochMs);
  const nvml = fakeNvml({ gpus: [{ lostAfterMs: 3_600_000 }, {}], epochMs });
  travel.attach(nvml.libraryPath);
  t.teardown(nvml.cleanup);
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath }, travel.clock);
  t.teardown(() => agent.close());
  const { sampler } = agent.context;
  await begin(agent, { key: "lost" });
  const begunMs = travel.now();
  await sampler.waitForReadingsAfter(begunMs, ["gpu:0", "gpu:1"], 30_000);
  travel.jumpTo(epochMs + 3_600_000 + 1000);
  for (const start = Date.now(); sampler.device("gpu:0")!.status !== "lost" && Date.now() - start < 30_000; ) await sleep(20); // a condition
  const m = await end(agent, "lost");
  t.deepEqual(Object.keys(m.gpuEnergyJ), ["1"]);
  t.is(m.missingDevices.length, 1);
  t.is(m.missingDevices[0]!.index, 0);
  t.regex(m.missingDevices[0]!.reason, /GPU_IS_LOST/);
  const err = (await t.throwsAsync(begin(agent, { key: "asks-lost", gpuIndices: [0] }))) as ServiceError;
  t.is(err.code, status.FAILED_PRECONDITION);
});

test("the agent serves once every device has its first reading: a window begun at once is measured on all of them", async (t) => {
  // Each energy read takes 600 ms: a window begun as soon as the port opened would otherwise precede the
  // GPUs' first readings, and no reading would ever bracket its begin on them.
  const epochMs = Math.floor(Date.now() / 1000) * 1000 - 60_000;
  const nvml = fakeNvml({ gpus: [{ profile: P0 }, { profile: P1 }], epochMs, readLatencyUs: 600_000 });
  const tree = intelTwoSocketTree();
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath, CARBONMON_POWERCAP_ROOT: tree.root });
  t.teardown(async () => (await agent.close(), nvml.cleanup(), tree.cleanup()));
  const { sampler } = agent.context;
  t.deepEqual(
    sampler
      .devices()
      .filter((d) => !sampler.hasReading(d.id))
      .map((d) => d.id),
    [],
    "every device has a reading before the first RPC",
  );
  await begin(agent, { key: "at-once" });
  await sleep(1500);
  const m = await end(agent, "at-once", true);
  t.deepEqual(m.missingDevices, []);
  t.deepEqual(Object.keys(m.gpuEnergyJ), ["0", "1"]);
  t.deepEqual(Object.keys(m.cpuEnergyJ), ["0", "1"]);
  for (const [index, profile] of [
    [0, P0],
    [1, P1],
  ] as const) {
    const trueJ = profileEnergyJ(profile, epochMs, m.beginTime!.getTime(), m.endTime!.getTime());
    const err = Math.abs(m.gpuEnergyJ[index]! - trueJ);
    t.true(
      err <= m.gpuEnergyUncertaintyJ[index]! + MS_TOLERANCE_J,
      `gpu ${index}: ${m.gpuEnergyJ[index]} J vs ${trueJ} J, bound ± ${m.gpuEnergyUncertaintyJ[index]} J`,
    );
  }
});

test("CARBONMON_FIRST_READING_TIMEOUT_MS=0: a window begun before a GPU's first reading ends on the rest, across a restart too", async (t) => {
  // Each energy read takes 500 ms, one GPU after the other: GPU 1 is first read 0.5-1 s after the agent
  // started (its reading arrives with GPU 0's, ~1 s in), well after a window begun as soon as it serves.
  const nvml = fakeNvml({ gpus: [{ profile: P0 }, { profile: P1 }], readLatencyUs: 500_000 });
  const tree = intelTwoSocketTree();
  const data = tempDataDir();
  const env = { CARBONMON_NVML_LIBRARY: nvml.libraryPath, CARBONMON_POWERCAP_ROOT: tree.root, CARBONMON_DATA_DIR: data.dir };
  let agent = await startTestAgent({ ...env, CARBONMON_FIRST_READING_TIMEOUT_MS: "0" });
  t.teardown(async () => (await agent.close(), nvml.cleanup(), tree.cleanup(), data.cleanup()));
  t.false(agent.context.sampler.hasReading("gpu:1"), "served before GPU 1's first reading");
  await begin(agent, { key: "early" });
  tree.setEnergyUj("intel-rapl:0", 41_000_000); // package 0: 40 J since the begin
  // GPU 1's first reading (after the begin), and every device read after the 40 J: a condition, not a sleep.
  const sampler = agent.context.sampler;
  await sampler.waitForReadingsAfter(
    sampler.now(),
    sampler.devices().map((d) => d.id),
    30_000,
  );
  const gpu1 = (m: Measurement) => m.missingDevices.find((d) => d.domain === DeviceDomain.DEVICE_DOMAIN_GPU && d.index === 1);
  const running = await get(agent, "early");
  t.regex(gpu1(running)?.reason ?? "", /window's start was not measured on this device/, "no reading of GPU 1 brackets the begin");
  t.true(Math.abs(running.cpuEnergyJ[0]! - 40) < 1e-6, `package 0: ${running.cpuEnergyJ[0]} J`);

  // Restarted (waiting for first readings this time), the agent still has the CPUs' begin edges: they
  // were stored without waiting for GPU 1, which never brackets the begin.
  await agent.close();
  tree.setEnergyUj("intel-rapl:0", 61_000_000); // 20 J more while it was down
  agent = await startTestAgent(env);
  const m = await end(agent, "early");
  t.truthy(gpu1(m), "GPU 1 is still reported missing");
  t.deepEqual(
    m.missingDevices.filter((d) => d.domain !== DeviceDomain.DEVICE_DOMAIN_GPU),
    [],
    "every CPU and DRAM zone measured",
  );
  t.false("1" in m.gpuEnergyJ);
  t.true(Math.abs(m.cpuEnergyJ[0]! - 60) < 1e-6, `package 0 across the restart: ${m.cpuEnergyJ[0]} J`);
  t.is(m.cpuEnergyJ[1], 0);
});

test("CARBONMON_FIRST_READING_TIMEOUT_MS bounds the wait for a slow device's first reading", async (t) => {
  // Energy reads of 1 s, one GPU after the other: the first batch of readings lands ~2 s after start.
  // An unbounded wait would hold the port until then; a 1 s one serves before it.
  const nvml = fakeNvml({ gpus: [{ profile: P0 }, { profile: P1 }], readLatencyUs: 1_000_000 });
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath, CARBONMON_FIRST_READING_TIMEOUT_MS: "1000" });
  t.teardown(async () => (await agent.close(), nvml.cleanup()));
  t.false(agent.context.sampler.hasReading("gpu:1"), "served before the GPUs' first readings");
  t.deepEqual((await begin(agent, { key: "served" })).gpuIndices, [0, 1]);
});
