import test from "ava";
import {
  ApproximationKind,
  CarbonStatus,
  type BeginWindowRequest,
  type BeginWindowResponse,
  type EndWindowRequest,
  type GetWindowRequest,
  type Measurement,
} from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import { fakeNvml, profileEnergyJ, type Segment } from "../../helpers/fake-nvml.js";
import { call, startTestAgent, type TestAgent, beginWindow } from "../../helpers/grpc.js";
import { intelTwoSocketTree } from "../../helpers/powercap.js";

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
const _get = (agent: TestAgent, key: string) => call<GetWindowRequest, Measurement>(agent.client, agent.client.getWindow, { key });
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

test("windows of 50 ms, 1 s and 10 s, overlapping, against the scripted truth", async (t) => {
  const { agent, truth, cleanup } = await agentWithHardware();
  t.teardown(cleanup);
  await begin(agent, { key: "long" });
  await begin(agent, { key: "one-second", labels: { step: "1" } });
  await sleep(1000);
  const one = await end(agent, "one-second", true);
  // Start 20 ms after a counter update (the fake's grid: every 100 ms from a whole second), so that no
  // update falls inside the 50 ms window.
  await sleep(100 - ((Date.now() - 20) % 100));
  await begin(agent, { key: "short" });
  await sleep(50);
  const short = await end(agent, "short", true);
  await sleep(8900);
  const long = await end(agent, "long", true);
  for (const [name, m] of [
    ["1 s", one],
    ["50 ms", short],
    ["10 s", long],
  ] as const) {
    for (const [index, profile] of [
      [0, P0],
      [1, P1],
    ] as const) {
      const err = Math.abs(m.gpuEnergyJ[index]! - truth(profile, m));
      t.true(
        err <= m.gpuEnergyUncertaintyJ[index]! + MS_TOLERANCE_J,
        `${name} gpu ${index}: ${m.gpuEnergyJ[index]} J vs ${truth(profile, m)} J (± ${m.gpuEnergyUncertaintyJ[index]})`,
      );
    }
  }
  t.true(Math.abs(one.gpuEnergyJ[0]! - truth(P0, one)) <= 0.005 * truth(P0, one) + MS_TOLERANCE_J, "1 s within 0.5 %");
  t.true(Math.abs(long.gpuEnergyJ[0]! - truth(P0, long)) <= 0.005 * truth(P0, long), "10 s within 0.5 %");
  t.true(long.timeS > 9.9 && Math.abs(long.timeS - (long.endTime!.getTime() - long.beginTime!.getTime()) / 1000) < 0.002);
  t.deepEqual(one.labels, { step: "1" });
  t.true(one.ended);
  t.deepEqual(one.gpuUuids, { 0: "GPU-aaaa", 1: "GPU-bbbb" });
  t.deepEqual(Object.keys(one.cpuEnergyJ).sort(), ["0", "1"]);
  t.deepEqual(Object.keys(one.dramEnergyJ).sort(), ["0", "1"]);
  t.is(one.carbonStatus, CarbonStatus.CARBON_STATUS_DISABLED);
  t.regex(one.carbonStatusReason, /CARBONMON_INTENSITY_ADDR/);
  t.true(short.approximations.some((a) => a.kind === ApproximationKind.APPROXIMATION_KIND_SHORT_WINDOW));
  t.is(
    one.totalEnergyJ,
    Object.values(one.gpuEnergyJ)
      .concat(Object.values(one.cpuEnergyJ), Object.values(one.dramEnergyJ))
      .reduce((a, b) => a + b, 0),
  );
});
