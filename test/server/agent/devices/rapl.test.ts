import test from "ava";
import type { Reading } from "../../../../server/agent/devices/energy-source.js";
import { EACCES_HINT, NO_RAPL_HINT, RaplSource, parseEnergyUj, parseZoneName } from "../../../../server/agent/devices/rapl.js";
import { ManualClock } from "../../../../server/shared/clock.js";
import {
  DEFAULT_RANGE_UJ,
  aboutToWrapTree,
  amdTree,
  buildTree,
  intelTwoSocketTree,
  makeRootOnly,
  probeInChild,
} from "../../../helpers/powercap.js";

const probe = (root: string, clock = new ManualClock()) => RaplSource.probe({ root, maxPowerW: 1000, samplingPeriodMs: 100, clock });

const counters = (readings: Reading[]) => Object.fromEntries(readings.map((r) => [r.deviceId, r.counterJ]));

test("parseEnergyUj reads a decimal counter with or without its newline", (t) => {
  t.is(parseEnergyUj("123\n"), 123);
  t.is(parseEnergyUj("0"), 0);
  t.is(parseEnergyUj(`${DEFAULT_RANGE_UJ}\n`), DEFAULT_RANGE_UJ);
});

test("parseEnergyUj rejects garbage", (t) => {
  for (const text of ["", "\n", "abc\n", "-5\n", "1.5\n", "12 34\n", "0x10", "99999999999999999999\n"]) {
    t.throws(() => parseEnergyUj(text), { message: /not an energy counter/ }, JSON.stringify(text));
  }
});

test("parseZoneName tells packages and subzones apart", (t) => {
  t.deepEqual(parseZoneName("package-0\n"), { kind: "package", index: 0 });
  t.deepEqual(parseZoneName("package-12"), { kind: "package", index: 12 });
  for (const kind of ["dram", "core", "uncore", "psys"] as const) t.deepEqual(parseZoneName(`${kind}\n`), { kind });
  for (const text of ["", "package-", "package-x", "gpu", "DRAM", "intel-rapl:0"]) t.is(parseZoneName(text), undefined);
});

test("Intel two sockets: packages and drams found by name, the rest only reported", async (t) => {
  const tree = intelTwoSocketTree();
  t.teardown(tree.cleanup);
  const source = probe(tree.root);
  t.teardown(() => source.stop());
  t.deepEqual(source.state(), { name: "rapl", status: "ok" });
  const byId = Object.fromEntries(source.devices().map((d) => [d.id, d]));
  t.deepEqual(Object.keys(byId).sort(), ["cpu:0", "cpu:1", "dram:0", "dram:1"]);
  t.like(byId["dram:0"], { domain: "dram", index: 0, path: "intel-rapl:0/intel-rapl:0:0", status: "ok" });
  t.like(byId["dram:1"], { domain: "dram", index: 1, path: "intel-rapl:1/intel-rapl:1:1", status: "ok" });
  t.like(byId["cpu:1"], { domain: "cpu", index: 1, path: "intel-rapl:1", hasEnergyCounter: true });
  t.is(byId["cpu:0"]?.counterRangeJ, DEFAULT_RANGE_UJ / 1e6);
  // Each device reads its own file: package p → p·10+1 J, dram → p·10+2 J (never core's p·10+3 J).
  t.deepEqual(counters(source.readAll()), { "cpu:0": 1, "dram:0": 2, "cpu:1": 11, "dram:1": 12 });

  const info = source
    .infoZones()
    .map((z) => `${z.kind} ${z.index} ${z.path}`)
    .sort();
  t.deepEqual(info, [
    "core 0 intel-rapl:0/intel-rapl:0:1",
    "core 1 intel-rapl:1/intel-rapl:1:0",
    "package 0 intel-rapl-mmio:0",
    "psys 2 intel-rapl:2",
  ]);
  const mmio = source.infoZones().find((z) => z.path === "intel-rapl-mmio:0");
  t.regex(mmio?.statusReason ?? "", /duplicates package-0/);
});

test("AMD Zen tree: a package, no dram, state ok", async (t) => {
  const tree = amdTree();
  t.teardown(tree.cleanup);
  const source = probe(tree.root);
  t.teardown(() => source.stop());
  t.is(source.state().status, "ok");
  t.deepEqual(
    source.devices().map((d) => d.id),
    ["cpu:0"],
  );
  t.deepEqual(
    source.infoZones().map((z) => z.kind),
    ["core"],
  );
  t.deepEqual(counters(source.readAll()), { "cpu:0": 7 });
});

test("absent powercap root: unavailable with the VM hint, no throw", (t) => {
  const source = probe("/nonexistent/carbonmon/powercap");
  t.like(source.state(), { status: "unavailable", hint: NO_RAPL_HINT });
  t.regex(source.state().reason ?? "", /\/nonexistent\/carbonmon\/powercap/);
  t.deepEqual(source.devices(), []);
  t.deepEqual(source.readAll(), []);
});

test("a powercap root without intel-rapl zones is unavailable", (t) => {
  const tree = buildTree([{ path: "dtpm:0", name: "soc", energyUj: 1 }]);
  t.teardown(tree.cleanup);
  const source = probe(tree.root);
  t.like(source.state(), { status: "unavailable", hint: NO_RAPL_HINT });
  t.deepEqual(source.devices(), []);
});

test("EACCES on energy_uj: unavailable, devices listed, the fix in the hint (real EACCES as nobody)", (t) => {
  const tree = amdTree();
  t.teardown(tree.cleanup);
  makeRootOnly(tree, "intel-rapl:0");
  const result = probeInChild(tree.root, { dropPrivileges: true });
  t.not(result.uid, 0, "the child must not be root, or permission bits are ignored");
  t.is(result.state.status, "unavailable");
  t.is(result.state.hint, EACCES_HINT);
  t.true(result.state.reason?.includes(`${tree.root}/intel-rapl:0/energy_uj`), result.state.reason);
  t.is(result.devices.length, 1);
  t.like(result.devices[0], { id: "cpu:0", status: "unavailable" });
  t.regex(result.devices[0]?.statusReason ?? "", /permission denied .*energy_uj/);
  t.is(result.readings, 0);
});

test("control: as nobody with readable files the same tree is ok, so the EACCES came from the mode", (t) => {
  const tree = amdTree();
  t.teardown(tree.cleanup);
  const result = probeInChild(tree.root, { dropPrivileges: true });
  t.not(result.uid, 0);
  t.is(result.state.status, "ok");
  t.is(result.readings, 1);
});

test("readAll gives raw counters in joules that follow the files, stamped by the clock", async (t) => {
  const tree = intelTwoSocketTree();
  t.teardown(tree.cleanup);
  const clock = new ManualClock(1_000);
  const source = probe(tree.root, clock);
  t.teardown(() => source.stop());
  t.true(source.readAll().every((r) => r.tMs === 1_000));
  clock.advance(250);
  tree.setEnergyUj("intel-rapl:1", 11_500_000);
  tree.setEnergyUj("intel-rapl:1/intel-rapl:1:1", 12_250_000);
  const readings = source.readAll();
  t.true(readings.every((r) => r.tMs === 1_250));
  t.deepEqual(counters(readings), { "cpu:0": 1, "dram:0": 2, "cpu:1": 11.5, "dram:1": 12.25 });
});

test("a wrap is passed through raw: the sampler unwraps, not the backend", async (t) => {
  const tree = aboutToWrapTree();
  t.teardown(tree.cleanup);
  const source = probe(tree.root);
  t.teardown(() => source.stop());
  t.is(source.devices()[0]?.counterRangeJ, 1);
  t.deepEqual(counters(source.readAll()), { "cpu:0": 0.999 });
  tree.setEnergyUj("intel-rapl:0", 500);
  t.deepEqual(counters(source.readAll()), { "cpu:0": 0.0005 });
});

test("a failed read on one zone yields a failure for it and the others go on", async (t) => {
  const tree = intelTwoSocketTree();
  t.teardown(tree.cleanup);
  const source = probe(tree.root);
  t.teardown(() => source.stop());
  tree.writeRaw("intel-rapl:1/intel-rapl:1:1", "energy_uj", "garbage\n");
  const readings = source.readAll();
  const dram1 = readings.find((r) => r.deviceId === "dram:1");
  t.is(dram1?.counterJ, undefined);
  t.is(dram1?.failure?.status, "unavailable");
  t.regex(dram1?.failure?.reason ?? "", /energy_uj/);
  t.deepEqual(counters(readings.filter((r) => r.deviceId !== "dram:1")), { "cpu:0": 1, "dram:0": 2, "cpu:1": 11 });
});

test("readPeriodMs reads twice per wrap period at the highest plausible power", async (t) => {
  const cases = [
    { rangeUj: 1_000_000, maxPowerW: 100, samplingPeriodMs: 1000, expected: 5 }, // 1 J / 200 W = 5 ms
    { rangeUj: 1_000_000, maxPowerW: 100, samplingPeriodMs: 2, expected: 2 }, // sampling is already faster
    { rangeUj: 1_000, maxPowerW: 100, samplingPeriodMs: 1000, expected: 1 }, // clamped to 1 ms
    { rangeUj: DEFAULT_RANGE_UJ, maxPowerW: 1000, samplingPeriodMs: 100, expected: 100 },
  ];
  for (const c of cases) {
    const tree = aboutToWrapTree(c.rangeUj);
    const source = RaplSource.probe({ root: tree.root, maxPowerW: c.maxPowerW, samplingPeriodMs: c.samplingPeriodMs });
    t.is(source.readPeriodMs, c.expected, JSON.stringify(c));
    await source.stop();
    tree.cleanup();
  }
});

test("start delivers at once and then every readPeriodMs; stop ends it and is idempotent", async (t) => {
  const tree = aboutToWrapTree(); // 1 J range at 100 W: a read every 5 ms
  t.teardown(tree.cleanup);
  const source = RaplSource.probe({ root: tree.root, maxPowerW: 100, samplingPeriodMs: 1000 });
  const batches: Reading[][] = [];
  source.start((readings) => batches.push(readings));
  t.is(batches.length, 1, "the first batch comes synchronously");
  for (let waitedMs = 0; batches.length < 4 && waitedMs < 2000; waitedMs += 10) await sleep(10);
  t.true(batches.length >= 4, `only ${batches.length} batches`);
  t.true(batches.every((b) => b.length === 1 && b[0]?.counterJ === 0.999));
  await source.stop();
  const afterStop = batches.length;
  await sleep(50);
  t.is(batches.length, afterStop);
  await t.notThrowsAsync(source.stop());
  t.deepEqual(source.readAll(), [], "fds are closed");
});

test("a started source does not keep the process alive", (t) => {
  const tree = aboutToWrapTree();
  t.teardown(tree.cleanup);
  // The child starts the source, never stops it, and must still exit on its own.
  const result = probeInChild(tree.root, { dropPrivileges: false, start: true });
  t.is(result.state.status, "ok");
  t.is(result.batches, 1);
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
