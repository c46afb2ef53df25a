/** createAgentClient against the real agent (fake NVML: GPU 0 at 300 W, GPU 1 at 500 W; no RAPL). */
import test from "ava";
import { CarbonmonClientError, createAgentClient, type AgentClient, type CarbonEmissionMeasurement } from "../../client/index.js";
import { GPU_POWER_W, MS_TOLERANCE_J, agentWithGpus, sleep, until } from "./helpers.js";
import { downAddress } from "../helpers/down-address.js";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent, type TestAgent } from "../helpers/grpc.js";

function clientFor(
  t: { teardown(fn: () => unknown): void },
  agent: TestAgent,
  options: Parameters<typeof createAgentClient>[1] = {},
): AgentClient {
  const client = createAgentClient(agent.running.address, { cudaVisibleDevices: null, ...options });
  t.teardown(() => client.close());
  return client;
}

/** The measured energy is this GPU's: about P × (end − begin), nearer to it than to the other GPU's power. */
function assertPlausible(t: import("ava").ExecutionContext, m: CarbonEmissionMeasurement, index: number, powerW: number): void {
  const spanS = (m.measurement.endTime!.getTime() - m.measurement.beginTime!.getTime()) / 1000;
  const truth = powerW * spanS;
  const measured = m.gpu_energy[index]!;
  // The client's mapping is under test here, not the sampler's accuracy (test/e2e/window-accuracy.test.ts
  // and sampler-accuracy.test.ts hold it to the reported bound): on a machine with every core busy a read
  // that runs late can put a half-second window beyond its bound. So: this GPU's power, roughly, and nearer
  // to it than to the other GPU's (a swapped index would be).
  const nearest = GPU_POWER_W.reduce((a, b) => (Math.abs(measured - a * spanS) <= Math.abs(measured - b * spanS) ? a : b));
  t.true(
    measured > 0.5 * truth && measured < 1.5 * truth && nearest === powerW,
    `gpu ${index}: ${measured} J vs ${truth} J (reported ± ${m.measurement.gpuEnergyUncertaintyJ[index]! + MS_TOLERANCE_J})`,
  );
}

test("beginWindow / endWindow give Zeus-named fields; CPU/DRAM and carbon undefined without RAPL or carbon", async (t) => {
  const agent = await agentWithGpus(t);
  const client = clientFor(t, agent);
  const begun = await client.beginWindow("train/epoch-1", { labels: { job: "1234" } });
  t.is(begun.key, "train/epoch-1");
  t.deepEqual(begun.gpuIndices, [0, 1]);
  await sleep(500);
  const m = await client.endWindow("train/epoch-1", { waitForCounterUpdate: true });
  t.deepEqual(Object.keys(m).sort(), [
    "cpu_carbon_emission",
    "cpu_energy",
    "dram_carbon_emission",
    "dram_energy",
    "gpu_carbon_emission",
    "gpu_energy",
    "measurement",
    "time",
  ]);
  t.true(m.time > 0.45 && m.time < 2, `time ${m.time}`);
  t.deepEqual(Object.keys(m.gpu_energy), ["0", "1"]);
  assertPlausible(t, m, 0, GPU_POWER_W[0]);
  assertPlausible(t, m, 1, GPU_POWER_W[1]);
  t.is(m.cpu_energy, undefined);
  t.is(m.dram_energy, undefined);
  t.is(m.cpu_carbon_emission, undefined);
  t.is(m.dram_carbon_emission, undefined);
  t.is(m.gpu_carbon_emission, undefined, "carbon is DISABLED without an intensity service");
  t.deepEqual(m.measurement.labels, { job: "1234" });
  t.true(m.measurement.ended);
  // EndWindow is idempotent and GetWindow returns the stored result.
  t.deepEqual((await client.endWindow("train/epoch-1")).gpu_energy, m.gpu_energy);
  t.deepEqual((await client.getWindow("train/epoch-1")).gpu_energy, m.gpu_energy);
  t.is((await client.getHost()).gpus.length, 2);
});

test("errors are CarbonmonClientError with the gRPC code, its name and the details", async (t) => {
  const agent = await agentWithGpus(t);
  const client = clientFor(t, agent);
  await client.beginWindow("dup");
  const dup = await t.throwsAsync(client.beginWindow("dup"), { instanceOf: CarbonmonClientError });
  t.is(dup!.codeName, "ALREADY_EXISTS");
  t.is(dup!.code, 6);
  t.regex(dup!.details, /window 'dup' is already open/);
  t.regex(dup!.message, /BeginWindow: ALREADY_EXISTS/);
  const missing = await t.throwsAsync(client.endWindow("never"), { instanceOf: CarbonmonClientError });
  t.is(missing!.codeName, "NOT_FOUND");
  t.true(missing!.details.length > 0);
  t.is((await t.throwsAsync(client.getWindow("never"), { instanceOf: CarbonmonClientError }))!.codeName, "NOT_FOUND");
  t.is((await t.throwsAsync(client.cancelWindow("never"), { instanceOf: CarbonmonClientError }))!.codeName, "NOT_FOUND");
  const bad = await t.throwsAsync(client.beginWindow("has space"), { instanceOf: CarbonmonClientError });
  t.is(bad!.codeName, "INVALID_ARGUMENT");
  t.true(bad!.details.length > 0);
  const mig = await t.throwsAsync(client.beginWindow("mig", { cudaVisibleDevices: "MIG-1234" }), { instanceOf: CarbonmonClientError });
  t.is(mig!.codeName, "INVALID_ARGUMENT");
  t.is((await client.cancelWindow("dup")).key, "dup");
  t.deepEqual(await client.listWindows(), []);
});

test("measure() ends the window when fn throws, and returns fn's value with the measurement otherwise", async (t) => {
  const agent = await agentWithGpus(t);
  const client = clientFor(t, agent);
  const boom = new Error("training diverged");
  const thrown = await t.throwsAsync(
    client.measure("fails", async () => {
      await sleep(100);
      throw boom;
    }),
  );
  t.is(thrown, boom, "fn's own error propagates");
  t.deepEqual(await client.listWindows(), [], "the window is no longer open");
  const ended = await client.listWindows({ includeEnded: true });
  t.true(ended.some((w) => w.key === "fails" && w.ended));

  const { result, measurement } = await client.measure("works", async () => (await sleep(300), 42), { waitForCounterUpdate: true });
  t.is(result, 42);
  t.true(measurement.time >= 0.29);
  assertPlausible(t, measurement, 0, GPU_POWER_W[0]);
  t.deepEqual(await client.listWindows(), []);
});

test("the client sends CUDA_VISIBLE_DEVICES: given explicitly, and this process's by default", async (t) => {
  const agent = await agentWithGpus(t);
  const explicit = clientFor(t, agent, { cudaVisibleDevices: "1,0" });
  const begun = await explicit.beginWindow("cvd", { gpuIndices: [0], skipCpus: true });
  t.deepEqual(begun.nvmlGpuIndices, [1]);
  await sleep(500);
  const m = await explicit.endWindow("cvd", { waitForCounterUpdate: true });
  t.deepEqual(Object.keys(m.gpu_energy), ["0"]);
  assertPlausible(t, m, 0, GPU_POWER_W[1]); // framework GPU 0 is NVML GPU 1: 500 W

  const saved = process.env.CUDA_VISIBLE_DEVICES;
  process.env.CUDA_VISIBLE_DEVICES = "1";
  const byDefault = createAgentClient(agent.running.address);
  if (saved === undefined) delete process.env.CUDA_VISIBLE_DEVICES;
  else process.env.CUDA_VISIBLE_DEVICES = saved;
  t.teardown(() => byDefault.close());
  const b = await byDefault.beginWindow("env", { gpuIndices: [0] });
  t.deepEqual(b.nvmlGpuIndices, [1]);
  // A per-call null sends none: the agent's own numbering.
  t.deepEqual((await byDefault.beginWindow("none", { gpuIndices: [0], cudaVisibleDevices: null })).nvmlGpuIndices, [0]);
});

test("watchPower yields samples as an async iterable; break cancels the stream", async (t) => {
  const agent = await agentWithGpus(t);
  const client = clientFor(t, agent);
  const samples = [];
  for await (const sample of client.watchPower({ periodMs: 100 })) {
    samples.push(sample);
    t.is(agent.context.power.streams, 1);
    if (samples.length === 3) break;
  }
  t.deepEqual(
    samples.map((s) => s.sequence),
    [0n, 1n, 2n],
  );
  for (const s of samples) t.deepEqual(s.gpuPowerW, { 0: GPU_POWER_W[0], 1: GPU_POWER_W[1] });
  t.true(await until(() => agent.context.power.streams === 0), `${agent.context.power.streams} streams left`);

  // Errors of the stream are CarbonmonClientError too; an AbortSignal ends the loop quietly.
  const bad = await t.throwsAsync(async () => {
    for await (const _ of client.watchPower({ periodMs: 10 })) void _;
  });
  t.true(bad instanceof CarbonmonClientError);
  t.is((bad as CarbonmonClientError).codeName, "INVALID_ARGUMENT");
  const controller = new AbortController();
  let n = 0;
  for await (const _ of client.watchPower({ periodMs: 100, signal: controller.signal })) if (++n === 2) controller.abort();
  t.is(n, 2);
  t.true(await until(() => agent.context.power.streams === 0));
});

test("retries: idempotent calls are retried on UNAVAILABLE, BeginWindow and CancelWindow never", async (t) => {
  const { address } = await downAddress(t);
  const retried: string[] = [];
  // Refused connections answer UNAVAILABLE at once; the deadline only needs to outlast a busy machine's retries.
  const client = createAgentClient(address, { deadlineMs: 10_000, retries: 2, onRetry: ({ method }) => retried.push(method) });
  t.teardown(() => client.close());

  const begin = await t.throwsAsync(client.beginWindow("x"), { instanceOf: CarbonmonClientError });
  t.is(begin!.codeName, "UNAVAILABLE");
  const cancel = await t.throwsAsync(client.cancelWindow("x"), { instanceOf: CarbonmonClientError });
  t.is(cancel!.codeName, "UNAVAILABLE");
  t.deepEqual(retried, [], "one attempt each");

  const host = await t.throwsAsync(client.getHost(), { instanceOf: CarbonmonClientError });
  t.is(host!.codeName, "UNAVAILABLE");
  t.deepEqual(retried, ["GetHost", "GetHost"]);
  retried.length = 0;
  await t.throwsAsync(client.endWindow("x"));
  await t.throwsAsync(client.listWindows());
  t.deepEqual(retried, ["EndWindow", "EndWindow", "ListWindows", "ListWindows"]);
});

test("retries: an idempotent call succeeds once the agent is up", async (t) => {
  const down = await downAddress(t);
  const address = down.address;
  const nvml = fakeNvml({ gpus: [{}, {}] });
  let agent: TestAgent | undefined;
  t.teardown(async () => (await agent?.close(), nvml.cleanup()));
  const retried: string[] = [];
  // Enough retries (backoff ≤ 1 s each) for the agent to start however busy the machine: the test waits on
  // the agent coming up, not on a time budget.
  const client = createAgentClient(address, {
    retries: 100,
    cudaVisibleDevices: null,
    channelOptions: { "grpc.initial_reconnect_backoff_ms": 50, "grpc.max_reconnect_backoff_ms": 200 },
    // The first attempt found nothing listening: start the agent on that port now.
    onRetry: ({ method }) => {
      retried.push(method);
      if (retried.length === 1)
        void down
          .release()
          .then(() => startTestAgent({ CARBONMON_AGENT_LISTEN: address, CARBONMON_NVML_LIBRARY: nvml.libraryPath }))
          .then((a) => (agent = a));
    },
  });
  t.teardown(() => client.close());
  const host = await client.getHost();
  t.is(host.gpus.length, 2);
  t.true(retried.length >= 1, "the first attempt failed and was retried");
});
