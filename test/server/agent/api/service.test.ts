import { hostname } from "node:os";
import test from "ava";
import {
  DeviceStatus,
  RaplZoneKind,
  type BeginWindowRequest,
  type BeginWindowResponse,
  type CancelWindowRequest,
  type CancelWindowResponse,
  type GetHostRequest,
  type GetHostResponse,
} from "../../../../proto/gen/carbonmon/agent/v1/agent.js";
import { fakeNvml } from "../../../helpers/fake-nvml.js";
import { call, startTestAgent } from "../../../helpers/grpc.js";
import { intelTwoSocketTree } from "../../../helpers/powercap.js";

const getHost = (agent: Awaited<ReturnType<typeof startTestAgent>>) =>
  call<GetHostRequest, GetHostResponse>(agent.client, agent.client.getHost, {});

test("GetHost lists the GPUs, the RAPL zones and every backend's state", async (t) => {
  const nvml = fakeNvml({
    gpus: [
      { uuid: "GPU-1111", powerLimitW: 700 },
      { uuid: "GPU-2222", energyCounter: false, mig: true },
    ],
  });
  const tree = intelTwoSocketTree();
  t.teardown(() => (nvml.cleanup(), tree.cleanup()));
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_POWERCAP_ROOT: tree.root,
    CARBONMON_SAMPLING_PERIOD_MS: "200",
    CARBONMON_IDLE_SAMPLING_PERIOD_MS: "2500",
    CARBONMON_LOCATION: "DE",
    CUDA_VISIBLE_DEVICES: "1,0",
  });
  t.teardown(() => agent.close());
  const host = await getHost(agent);
  t.deepEqual(
    host.gpus.map((g) => [g.index, g.uuid, g.hasEnergyCounter, g.migEnabled, g.status]),
    [
      [0, "GPU-1111", true, false, DeviceStatus.DEVICE_STATUS_OK],
      [1, "GPU-2222", false, true, DeviceStatus.DEVICE_STATUS_OK],
    ],
  );
  t.is(host.gpus[0]!.powerLimitW, 700);
  t.is(host.gpus[0]!.name, "NVIDIA H100 80GB HBM3");
  const zones = host.raplZones.map((z) => `${z.kind}:${z.index}:${z.name}`);
  for (const z of [
    `${RaplZoneKind.RAPL_ZONE_KIND_PACKAGE}:0:package-0`,
    `${RaplZoneKind.RAPL_ZONE_KIND_PACKAGE}:1:package-1`,
    `${RaplZoneKind.RAPL_ZONE_KIND_DRAM}:0:dram`,
    `${RaplZoneKind.RAPL_ZONE_KIND_DRAM}:1:dram`,
  ]) {
    t.true(zones.includes(z), `${z} in ${zones.join(", ")}`);
  }
  t.true(host.raplZones.some((z) => z.kind === RaplZoneKind.RAPL_ZONE_KIND_PSYS));
  t.deepEqual(
    host.backends.map((b) => [b.name, b.status]),
    [
      ["nvml", DeviceStatus.DEVICE_STATUS_OK],
      ["rapl", DeviceStatus.DEVICE_STATUS_OK],
    ],
  );
  t.is(host.backends[0]!.version, "580.159.04");
  t.deepEqual(host.samplingPeriod, { seconds: 0n, nanos: 200_000_000 });
  t.deepEqual(host.idleSamplingPeriod, { seconds: 2n, nanos: 500_000_000 });
  t.is(host.location, "DE");
  t.is(host.cudaVisibleDevices, "1,0");
});

test("with no GPU library and no powercap tree the agent still serves, and says why", async (t) => {
  const agent = await startTestAgent();
  t.teardown(() => agent.close());
  const host = await getHost(agent);
  t.deepEqual(host.gpus, []);
  const [nvml, rapl] = host.backends;
  t.is(nvml!.status, DeviceStatus.DEVICE_STATUS_UNAVAILABLE);
  t.regex(nvml!.hint, /CARBONMON_NVML_LIBRARY/);
  t.is(rapl!.status, DeviceStatus.DEVICE_STATUS_UNAVAILABLE);
  t.regex(rapl!.hint, /no RAPL on this machine/);
});

test("GetHost says whether the agent samples at full rate now: idle at start, active with a window open, idle again after the linger", async (t) => {
  const nvml = fakeNvml({ gpus: [{}] });
  t.teardown(() => nvml.cleanup());
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath, CARBONMON_IDLE_AFTER_MS: "1500" });
  t.teardown(() => agent.close());
  t.false((await getHost(agent)).samplingActive);
  const req = { key: "k", gpuIndices: [], cpuIndices: [], labels: {}, skipGpus: false, skipCpus: false };
  await call<BeginWindowRequest, BeginWindowResponse>(agent.client, agent.client.beginWindow, req);
  t.true((await getHost(agent)).samplingActive);
  await call<CancelWindowRequest, CancelWindowResponse>(agent.client, agent.client.cancelWindow, { key: "k" });
  t.true((await getHost(agent)).samplingActive, "full rate lingers after the last window");
  const deadline = Date.now() + 10_000;
  while ((await getHost(agent)).samplingActive && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.false((await getHost(agent)).samplingActive, "idle once CARBONMON_IDLE_AFTER_MS has passed");
});

test("GetHost reports CARBONMON_HOSTNAME when set (a Kubernetes node name), else the machine's name", async (t) => {
  const named = await startTestAgent({ CARBONMON_HOSTNAME: "gpu-node-17" });
  t.teardown(() => named.close());
  t.is((await getHost(named)).hostname, "gpu-node-17");
  const plain = await startTestAgent();
  t.teardown(() => plain.close());
  t.is((await getHost(plain)).hostname, hostname());
});
