import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import type { Reading } from "../../../../server/agent/devices/energy-source.js";
import { NvmlSource } from "../../../../server/agent/devices/nvml.js";
import { fakeNvml, type FakeNvmlConfig } from "../../../helpers/fake-nvml.js";
import { TimeTravel } from "../../../helpers/time-travel.js";

async function open(config: FakeNvmlConfig): Promise<{ source: NvmlSource; readings: Reading[]; close: () => Promise<void> }> {
  const fake = fakeNvml(config);
  const source = await NvmlSource.probe({ libraryPath: fake.libraryPath, samplingPeriodMs: 100 });
  const readings: Reading[] = [];
  source.start((batch) => readings.push(...batch));
  return {
    source,
    readings,
    close: async () => {
      await source.stop();
      fake.cleanup();
    },
  };
}

const until = async (cond: () => boolean, timeoutMs = 5000): Promise<void> => {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
};

test("probe lists each GPU with name, UUID, power limit and driver version; readings follow", async (t) => {
  const { source, readings, close } = await open({
    gpus: [
      { name: "NVIDIA H100 80GB HBM3", uuid: "GPU-aaaa", powerLimitW: 700, profile: [{ powerW: 300, ms: 1000 }] },
      { uuid: "GPU-bbbb", powerLimitW: 350 },
    ],
  });
  t.teardown(close);
  t.deepEqual(source.state(), { name: "nvml", status: "ok", version: "580.159.04" });
  const [g0, g1] = source.devices();
  t.like(g0, {
    id: "gpu:0",
    domain: "gpu",
    index: 0,
    name: "NVIDIA H100 80GB HBM3",
    uuid: "GPU-aaaa",
    powerLimitW: 700,
    hasEnergyCounter: true,
    status: "ok",
    migEnabled: false,
  });
  t.like(g1, { id: "gpu:1", uuid: "GPU-bbbb", powerLimitW: 350 });
  await until(() => readings.filter((r) => r.deviceId === "gpu:0").length >= 3);
  const r = readings.filter((x) => x.deviceId === "gpu:0");
  t.is(r[0]!.powerW, 300);
  t.is(r[0]!.memoryPowerW, 15);
  t.is(r[0]!.temperatureC, 45);
  t.true(r[2]!.counterJ! > r[0]!.counterJ!, "the counter moves");
  t.true(source.energyReads >= 3);
});

test("where field timestamps are update instants (value held, timestamp held) they are used as they are", async (t) => {
  const { readings, close } = await open({ gpus: [{}], fieldTimestamp: "update" });
  t.teardown(close);
  await until(() => readings.length >= 6);
  const r = readings.slice(-3);
  for (let i = 1; i < r.length; i++) {
    const gapMs = r[i]!.tMs - r[i - 1]!.tMs;
    t.true(Math.abs(gapMs - 100 * Math.round(gapMs / 100)) < 0.01, `gap ${gapMs}`);
    t.is(r[i]!.timeUncertaintyMs, undefined);
  }
});

test("where field timestamps are read times (real drivers), update instants are learnt: stamps land on the grid", async (t) => {
  const epochMs = Math.floor(Date.now() / 1000) * 1000 + 37; // the grid's phase: 37 ms past each 100 ms
  const { readings, close } = await open({ gpus: [{}], fieldTimestamp: "read", epochMs });
  t.teardown(close);
  await until(() => readings.length >= 25, 10_000);
  const offset = Date.now() - (performance.timeOrigin + performance.now());
  const late = readings.slice(-8);
  for (const r of late) {
    const wallMs = r.tMs + offset;
    const gridMs = epochMs + 100 * Math.round((wallMs - epochMs) / 100);
    t.true(Math.abs(wallMs - gridMs) <= r.timeUncertaintyMs! + 1.5, `stamp ${wallMs - gridMs} ms off the grid, ± ${r.timeUncertaintyMs}`);
    t.true(r.timeUncertaintyMs! < 10, `uncertainty ${r.timeUncertaintyMs} ms`);
  }
});

test("a GPU without an energy counter is read by power only and says so", async (t) => {
  const { source, readings, close } = await open({ gpus: [{ energyCounter: false, profile: [{ powerW: 250, ms: 1000 }] }] });
  t.teardown(close);
  t.false(source.devices()[0]!.hasEnergyCounter);
  await until(() => readings.length >= 2);
  t.is(readings[0]!.counterJ, undefined);
  t.is(readings[0]!.powerW, 250);
});

test("instant power falls back to MODULE scope where GPU scope fails (Grace Hopper)", async (t) => {
  // nvmlDeviceGetPowerUsage would give the 1 s mean (390 W); the instant field gives 700 W then 80 W.
  const { readings, close } = await open({
    gpus: [
      {
        gpuScopePower: false,
        profile: [
          { powerW: 700, ms: 500 },
          { powerW: 80, ms: 500 },
        ],
      },
    ],
    epochMs: Math.floor(Date.now() / 1000) * 1000 - 5000,
  });
  t.teardown(close);
  await until(() => readings.length >= 12);
  const powers = new Set(readings.map((r) => r.powerW));
  t.deepEqual([...powers].sort(), [700, 80].sort());
});

test("without the instant power field, the 1 s mean from nvmlDeviceGetPowerUsage is used", async (t) => {
  const { readings, close } = await open({
    gpus: [
      {
        gpuScopePower: false,
        moduleScopePower: false,
        profile: [
          { powerW: 700, ms: 500 },
          { powerW: 80, ms: 500 },
        ],
      },
    ],
    epochMs: Math.floor(Date.now() / 1000) * 1000 - 5000,
  });
  t.teardown(close);
  await until(() => readings.length >= 3);
  // GPU and MODULE scope both fail: the worker uses GetPowerUsage, a steady 1 s mean of 390 W.
  t.true(
    readings.every((r) => Math.abs(r.powerW! - 390) < 1),
    JSON.stringify(readings.map((r) => r.powerW)),
  );
});

test("a GPU lost mid-run is reported lost with the reason; the others go on", async (t) => {
  // The loss is scripted an hour out and reached by time travel once readings flow: no race with start-up.
  const epochMs = Date.now();
  const travel = new TimeTravel(epochMs);
  const fake = fakeNvml({ gpus: [{ lostAfterMs: 3_600_000 }, {}], epochMs });
  travel.attach(fake.libraryPath);
  const source = await NvmlSource.probe({ libraryPath: fake.libraryPath, samplingPeriodMs: 100, clockShift: travel.clock.buffer });
  const readings: Reading[] = [];
  source.start((batch) => readings.push(...batch));
  t.teardown(async () => (await source.stop(), fake.cleanup()));
  await until(() => readings.some((r) => r.deviceId === "gpu:0" && r.counterJ !== undefined), 30_000);
  t.false(readings.some((r) => r.failure));
  travel.jumpTo(epochMs + 3_600_000 + 1000);
  await until(() => readings.some((r) => r.failure), 30_000);
  const failure = readings.find((r) => r.failure)!;
  t.is(failure.deviceId, "gpu:0");
  t.is(failure.failure!.status, "lost");
  t.regex(failure.failure!.reason, /GPU_IS_LOST/);
  t.regex(failure.failure!.reason, /reset the GPU|Xid/);
  const after = readings.length;
  await until(() => readings.length >= after + 3, 30_000);
  t.true(
    readings.slice(after).every((r) => r.deviceId === "gpu:1"),
    "gpu:0 is no longer read, gpu:1 is",
  );
});

for (const [init, name, hint] of [
  ["no_permission", "NO_PERMISSION", /allowed to query the GPU/],
  ["driver_not_loaded", "DRIVER_NOT_LOADED", /install the NVIDIA driver/],
] as const) {
  test(`nvmlInit failing with ${name} makes the backend unavailable with a hint, never a crash`, async (t) => {
    const fake = fakeNvml({ gpus: [{}], init });
    t.teardown(fake.cleanup);
    const source = await NvmlSource.probe({ libraryPath: fake.libraryPath, samplingPeriodMs: 100 });
    t.is(source.state().status, "unavailable");
    t.regex(source.state().reason!, new RegExp(`nvmlInit_v2: ${name}`));
    t.regex(source.state().hint!, hint);
    t.deepEqual(source.devices(), []);
    await source.stop();
  });
}

test("a missing library is reported with the path and the setting to change", async (t) => {
  const source = await NvmlSource.probe({ libraryPath: "/nonexistent/libnvidia-ml.so.1", samplingPeriodMs: 100 });
  t.is(source.state().status, "unavailable");
  t.regex(source.state().reason!, /cannot load \/nonexistent\/libnvidia-ml\.so\.1/);
  t.regex(source.state().hint!, /CARBONMON_NVML_LIBRARY/);
});

test("a file that is no shared library: the worker's load fails, reported with the path and dlopen's reason", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-nvml-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "libnvidia-ml.so.1");
  writeFileSync(path, "not an ELF file\n");
  const source = await NvmlSource.probe({ libraryPath: path, samplingPeriodMs: 100 });
  t.is(source.state().status, "unavailable");
  t.true(source.state().reason!.startsWith(`cannot load ${path}: `), source.state().reason);
  t.notRegex(source.state().reason!, /no such file/);
  t.regex(source.state().hint!, /CARBONMON_NVML_LIBRARY/);
});

test("stop shuts NVML down once and can be called again", async (t) => {
  const { source, readings, close } = await open({ gpus: [{}] });
  await until(() => readings.length >= 1);
  await source.stop();
  await source.stop();
  const n = readings.length;
  await new Promise((r) => setTimeout(r, 250));
  t.is(readings.length, n, "no readings after stop");
  await close();
});
