/**
 * SIGKILL mid-window: the agent runs as a child process, is killed with SIGKILL while a window is open,
 * and a new agent on the same data directory ends the window. The fake GPU counter keeps counting while
 * no agent runs (as NVML's does), so the energy over the whole window, downtime included, is known.
 * In the e2e tier: real processes killed with SIGKILL and a window measured across seconds of real time.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { credentials } from "@grpc/grpc-js";
import test from "ava";
import {
  EnergyMonitorClient,
  type EndWindowRequest,
  type ListWindowsRequest,
  type ListWindowsResponse,
  type Measurement,
} from "../../proto/gen/carbonmon/agent/v1/agent.js";
import { CLI_ARGS } from "../helpers/cli.js";
import { fakeNvml, profileEnergyJ, type Segment } from "../helpers/fake-nvml.js";
import { call, tempDataDir, beginWindow } from "../helpers/grpc.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const PROFILE: Segment[] = [
  { powerW: 600, ms: 300 },
  { powerW: 200, ms: 700 },
];

async function startChild(env: Record<string, string>): Promise<{ child: ChildProcess; client: EnergyMonitorClient }> {
  const child = spawn(process.execPath, [...CLI_ARGS, "agent"], {
    cwd: ROOT,
    env: { ...process.env, ...env, CARBONMON_AGENT_LISTEN: "127.0.0.1:0" },
  });
  const address = await new Promise<string>((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d;
      const m = /"address":"(127\.0\.0\.1:\d+)"/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on("exit", (code) => reject(new Error(`agent exited with ${code}: ${err}`)));
  });
  return { child, client: new EnergyMonitorClient(address, credentials.createInsecure()) };
}

test("a window survives SIGKILL of the agent and is ended correctly by the next one", async (t) => {
  const epochMs = Math.floor(Date.now() / 1000) * 1000 - 10_000;
  const nvml = fakeNvml({ gpus: [{ profile: PROFILE }], epochMs });
  const data = tempDataDir();
  t.teardown(() => (nvml.cleanup(), data.cleanup()));
  const env = {
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_DATA_DIR: data.dir,
    CARBONMON_POWERCAP_ROOT: `${data.dir}/none`,
    CARBONMON_LOG_LEVEL: "info",
  };

  const first = await startChild(env);
  await new Promise((r) => setTimeout(r, 1200));
  const begun = await beginWindow(first.client, {
    key: "job-1",
    labels: { job: "1" },
  });
  await new Promise((r) => setTimeout(r, 700));
  first.client.close();
  first.child.kill("SIGKILL");
  await new Promise((r) => first.child.once("exit", r));
  await new Promise((r) => setTimeout(r, 800)); // downtime: the GPU keeps drawing power

  const second = await startChild(env);
  t.teardown(() => (second.client.close(), second.child.kill("SIGKILL")));
  const open = await call<ListWindowsRequest, ListWindowsResponse>(second.client, second.client.listWindows, { includeEnded: false });
  t.deepEqual(
    open.windows.map((w) => w.key),
    ["job-1"],
  );
  await new Promise((r) => setTimeout(r, 1200));
  const m = await call<EndWindowRequest, Measurement>(second.client, second.client.endWindow, { key: "job-1", waitForCounterUpdate: true });
  const truth = profileEnergyJ(PROFILE, epochMs, m.beginTime!.getTime(), m.endTime!.getTime());
  t.is(m.beginTime!.getTime(), begun.beginTime!.getTime());
  t.true(m.timeS > 2.5);
  t.true(
    Math.abs(m.gpuEnergyJ[0]! - truth) <= m.gpuEnergyUncertaintyJ[0]! + 0.6 * 1.5,
    `${m.gpuEnergyJ[0]} J vs ${truth} J ± ${m.gpuEnergyUncertaintyJ[0]}`,
  );
  t.true(Math.abs(m.gpuEnergyJ[0]! - truth) <= 0.01 * truth, "within 1 % across the restart");
  t.deepEqual(m.labels, { job: "1" });
  // Idempotent across restarts too.
  const again = await call<EndWindowRequest, Measurement>(second.client, second.client.endWindow, {
    key: "job-1",
    waitForCounterUpdate: false,
  });
  t.deepEqual(again, m);
});

test("what was answered just before SIGKILL is what the next agent knows: an ended window's result, a cancel, a new window", async (t) => {
  const nvml = fakeNvml({ gpus: [{ profile: PROFILE }] });
  const data = tempDataDir();
  t.teardown(() => (nvml.cleanup(), data.cleanup()));
  const env = {
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_DATA_DIR: data.dir,
    CARBONMON_POWERCAP_ROOT: `${data.dir}/none`,
    CARBONMON_LOG_LEVEL: "info",
  };
  const begin = (client: EnergyMonitorClient, key: string) => beginWindow(client, { key });

  const first = await startChild(env);
  await new Promise((r) => setTimeout(r, 1000));
  await begin(first.client, "ended");
  await begin(first.client, "cancelled");
  await new Promise((r) => setTimeout(r, 400));
  // Answered, then killed at once: the store has not moved these into SQLite yet (it batches every 50 ms).
  const ended = await call<EndWindowRequest, Measurement>(first.client, first.client.endWindow, {
    key: "ended",
    waitForCounterUpdate: false,
  });
  await call(first.client, first.client.cancelWindow, { key: "cancelled" });
  const late = await begin(first.client, "begun-last");
  first.child.kill("SIGKILL");
  first.client.close();
  await new Promise((r) => first.child.once("exit", r));

  const second = await startChild(env);
  t.teardown(() => (second.client.close(), second.child.kill("SIGKILL")));
  const open = await call<ListWindowsRequest, ListWindowsResponse>(second.client, second.client.listWindows, { includeEnded: false });
  t.deepEqual(
    open.windows.map((w) => [w.key, w.beginTime!.getTime()]),
    [["begun-last", late.beginTime!.getTime()]],
  );
  const again = await call<EndWindowRequest, Measurement>(second.client, second.client.endWindow, {
    key: "ended",
    waitForCounterUpdate: false,
  });
  t.deepEqual(again, ended, "EndWindow repeated after the restart returns the answered result");
  t.true(ended.gpuEnergyJ[0]! > 0);
});
