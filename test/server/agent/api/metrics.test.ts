/**
 * The agent's /metrics over HTTP, from a real agent on a fake NVML (two GPUs at scripted constant powers)
 * and a fake powercap tree: names, types, labels and values; the energy counter's slope against the
 * scripted power; window and RPC counters; and the service health that follows the devices.
 */
import test from "ava";
import type { EndWindowRequest, Measurement } from "../../../../proto/gen/carbonmon/agent/v1/agent.js";
import { fakeNvml } from "../../../helpers/fake-nvml.js";
import { call, startTestAgent, type TestAgent, beginWindow } from "../../../helpers/grpc.js";
import { intelTwoSocketTree } from "../../../helpers/powercap.js";
import { find, healthOf, scrape, until, value } from "../../../helpers/prom.js";

const POWERS_W = [120, 250];
const SERVICE = "carbonmon.agent.v1.EnergyMonitor";

async function agentWithGpus(t: import("ava").ExecutionContext, env: Record<string, string> = {}): Promise<TestAgent> {
  const nvml = fakeNvml({ gpus: POWERS_W.map((powerW, i) => ({ uuid: `GPU-${i}`, profile: [{ powerW, ms: 1000 }] })) });
  const tree = intelTwoSocketTree();
  t.teardown(() => (nvml.cleanup(), tree.cleanup()));
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_POWERCAP_ROOT: tree.root,
    CARBONMON_AGENT_METRICS_LISTEN: "127.0.0.1:0",
    CARBONMON_IDLE_SAMPLING_PERIOD_MS: "100",
    ...env,
  });
  t.teardown(() => agent.close());
  return agent;
}

const begin = (a: TestAgent, key: string) => beginWindow(a.client, { key });
const end = (a: TestAgent, key: string) =>
  call<EndWindowRequest, Measurement>(a.client, a.client.endWindow, { key, waitForCounterUpdate: false });

test("GET /metrics: every device metric with its type, labels and the sampler's values", async (t) => {
  const agent = await agentWithGpus(t);
  t.truthy(agent.metricsAddress);
  await until(
    async () => find(await scrape(agent.metricsAddress!), "carbonmon_nvml_read_duration_seconds_count")[0]!.value > 0,
    "an NVML read",
  );
  const m = await scrape(agent.metricsAddress!);
  const types = {
    carbonmon_gpu_energy_joules_total: "counter",
    carbonmon_gpu_power_watts: "gauge",
    carbonmon_gpu_temperature_celsius: "gauge",
    carbonmon_cpu_energy_joules_total: "counter",
    carbonmon_dram_energy_joules_total: "counter",
    carbonmon_device_up: "gauge",
    carbonmon_nvml_read_duration_seconds: "histogram",
    carbonmon_windows_open: "gauge",
    carbonmon_windows_ended_total: "counter",
    carbonmon_window_energy_joules_total: "counter",
    carbonmon_carbon_pending: "gauge",
    grpc_server_handled_total: "counter",
    grpc_server_handling_seconds: "histogram",
    process_cpu_seconds_total: "counter",
    nodejs_eventloop_lag_p99_seconds: "gauge",
  };
  for (const [name, type] of Object.entries(types)) t.is(m.types.get(name), type, name);
  for (const [i, powerW] of POWERS_W.entries()) {
    const labels = { gpu: String(i), uuid: `GPU-${i}`, model_name: "NVIDIA H100 80GB HBM3" };
    const [energy] = find(m, "carbonmon_gpu_energy_joules_total", labels);
    t.truthy(energy, `gpu ${i} energy`);
    t.truthy(energy!.labels.hostname);
    t.true(energy!.value > 0);
    t.is(value(m, "carbonmon_gpu_power_watts", labels), powerW);
    t.true(Number.isFinite(value(m, "carbonmon_gpu_temperature_celsius", labels)));
    t.is(value(m, "carbonmon_device_up", { device: `gpu:${i}` }), 1);
  }
  for (const pkg of ["0", "1"]) {
    t.is(find(m, "carbonmon_cpu_energy_joules_total", { package: pkg }).length, 1);
    t.is(find(m, "carbonmon_dram_energy_joules_total", { package: pkg }).length, 1);
    t.is(value(m, "carbonmon_device_up", { device: `cpu:${pkg}` }), 1);
  }
  t.is(value(m, "carbonmon_windows_open"), 0);
  t.is(value(m, "carbonmon_carbon_pending"), 0);
  for (const s of ["disabled", "pending", "provisional", "final"]) t.is(value(m, "carbonmon_windows_ended_total", { carbon_status: s }), 0);
  const res = await fetch(`http://${agent.metricsAddress}/other`);
  t.is(res.status, 404);
});

test("the GPU energy counter grows at each GPU's scripted power, and never goes down", async (t) => {
  const agent = await agentWithGpus(t);
  // Bracket the instants the agent computed each scrape at: [before the request, after the answer].
  const timed = async () => {
    const before = performance.now();
    const m = await scrape(agent.metricsAddress!);
    return { m, before, after: performance.now(), readings: agent.context.sampler.readings };
  };
  // The counter is extrapolated from the latest reading, stamped at its update instant as the update grid
  // places it. Scraped from start-up in full runs of the suite, the growth twice came out short: 1.4 J (5.5 ms)
  // over 0.4 s, then 3.6 J (30 ms) over 1 s; never in runs of this file alone, even under load. The likely
  // cause is the grid's first estimate, made while the machine is busy, moving as it settles (the agent
  // reports that uncertainty on windows; the counter does not carry it). So the first scrape waits for ten
  // ticks (60 readings of 2 GPUs and 4 RAPL zones), and the growth is measured over ten more: ~1 s, where the
  // 1 % below covers 10 ms. A failure names the readings at each scrape.
  await until(() => agent.context.sampler.readings >= 60, "60 readings");
  const a = await timed();
  const readings = agent.context.sampler.readings;
  await until(() => agent.context.sampler.readings >= readings + 60, "60 more readings");
  const b = await timed();
  for (const [i, powerW] of POWERS_W.entries()) {
    const labels = { gpu: String(i) };
    const dJ = value(b.m, "carbonmon_gpu_energy_joules_total", labels) - value(a.m, "carbonmon_gpu_energy_joules_total", labels);
    const minS = (b.before - a.after) / 1000;
    const maxS = (b.after - a.before) / 1000;
    // The scripted power is constant: the counter's growth is power x elapsed, within the bracket (+1 % for the extrapolation's edge).
    t.true(
      dJ >= powerW * minS * 0.99 && dJ <= powerW * maxS * 1.01,
      `gpu ${i}: ${dJ} J in [${minS}, ${maxS}] s at ${powerW} W (readings ${a.readings} to ${b.readings})`,
    );
  }
  let last = 0;
  for (let k = 0; k < 20; k++) {
    const j = value(await scrape(agent.metricsAddress!), "carbonmon_gpu_energy_joules_total", { gpu: "1" });
    t.true(j >= last, "monotonic");
    last = j;
  }
});

test("windows and RPCs are counted: open windows, ended by carbon status, their energy, gRPC codes and latency", async (t) => {
  const agent = await agentWithGpus(t);
  await begin(agent, "job-1");
  await begin(agent, "job-2");
  await t.throwsAsync(begin(agent, "job-2"));
  await until(() => agent.context.sampler.readings > 10, "readings");
  const measured = await end(agent, "job-1");
  const m = await scrape(agent.metricsAddress!);
  t.is(value(m, "carbonmon_windows_open"), 1);
  t.is(value(m, "carbonmon_windows_ended_total", { carbon_status: "disabled" }), 1);
  const gpuJ = Object.values(measured.gpuEnergyJ).reduce((a, b) => a + b, 0);
  t.true(gpuJ > 0);
  t.true(Math.abs(value(m, "carbonmon_window_energy_joules_total", { device_kind: "gpu" }) - gpuJ) < 1e-6);
  const rpc = { grpc_service: SERVICE, grpc_method: "BeginWindow" };
  t.is(value(m, "grpc_server_handled_total", { ...rpc, grpc_code: "OK" }), 2);
  t.is(value(m, "grpc_server_handled_total", { ...rpc, grpc_code: "ALREADY_EXISTS" }), 1);
  t.is(value(m, "grpc_server_started_total", rpc), 3);
  t.is(value(m, "grpc_server_handling_seconds_count", rpc), 3);
  t.is(value(m, "grpc_server_handled_total", { grpc_method: "EndWindow", grpc_code: "OK" }), 1);
  t.is(find(m, "grpc_server_handling_seconds_bucket", { ...rpc, le: "+Inf" })[0]!.value, 3);
});

test("health: the agent's service is NOT_SERVING once no device can be read, device_up says which", async (t) => {
  const nvml = fakeNvml({ gpus: [{ uuid: "GPU-0", lostAfterMs: 300 }] });
  t.teardown(() => nvml.cleanup());
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_AGENT_METRICS_LISTEN: "127.0.0.1:0",
    CARBONMON_IDLE_SAMPLING_PERIOD_MS: "100",
  });
  t.teardown(() => agent.close());
  const address = agent.running.address;
  await until(async () => (await healthOf(address, SERVICE)) === "NOT_SERVING", "NOT_SERVING after the GPU is lost");
  t.is(await healthOf(address, ""), "SERVING", "the process still answers");
  t.is(value(await scrape(agent.metricsAddress!), "carbonmon_device_up", { device: "gpu:0" }), 0);
});

test("health: no device at all is NOT_SERVING, unless CARBONMON_ALLOW_NO_DEVICES=true", async (t) => {
  const none = await startTestAgent();
  t.teardown(() => none.close());
  t.is(await healthOf(none.running.address, SERVICE), "NOT_SERVING");
  t.is(await healthOf(none.running.address, ""), "SERVING");
  t.is(none.metricsAddress, undefined, "an empty CARBONMON_AGENT_METRICS_LISTEN serves no metrics");
  const allowed = await startTestAgent({ CARBONMON_ALLOW_NO_DEVICES: "true" });
  t.teardown(() => allowed.close());
  t.is(await healthOf(allowed.running.address, SERVICE), "SERVING");
});

test("health: a readable device makes the agent's service SERVING", async (t) => {
  const agent = await agentWithGpus(t);
  t.is(await healthOf(agent.running.address, SERVICE), "SERVING");
});
