/**
 * Idle-rate sampling, what needs no clock: the sampler tells its sources when demand starts and stops,
 * RAPL's idle period stays wrap-safe, and the setting's rules. The real-time behaviour (read rates idle and
 * active, the switch on a window or stream, the accuracy of a window begun while idle) is a soak of real
 * seconds: test/e2e/idle-sampling-rates.test.ts.
 */
import test from "ava";
import type { EnergySource, Reading } from "../../../../server/agent/devices/energy-source.js";
import { RaplSource } from "../../../../server/agent/devices/rapl.js";
import { Sampler } from "../../../../server/agent/energy/sampler.js";
import { ConfigError, loadAgentConfig } from "../../../../server/shared/config.js";
import { aboutToWrapTree, intelTwoSocketTree } from "../../../helpers/powercap.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(condition: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition() && performance.now() < deadline) await sleep(10);
  return condition();
}

// ---- RAPL ----

test("RAPL: the idle period never exceeds the wrap-safe period", async (t) => {
  const tree = aboutToWrapTree(1_000_000); // 1 J at 100 W: wrap-safe 5 ms
  t.teardown(tree.cleanup);
  const source = RaplSource.probe({ root: tree.root, maxPowerW: 100, samplingPeriodMs: 100, idlePeriodMs: 1000 });
  t.teardown(() => source.stop());
  t.is(source.readPeriodMs, 5);
  t.is(source.idleReadPeriodMs, 5);
  const wide = intelTwoSocketTree();
  t.teardown(wide.cleanup);
  const plain = RaplSource.probe({ root: wide.root, maxPowerW: 1000, samplingPeriodMs: 100 });
  t.teardown(() => plain.stop());
  t.is(plain.idleReadPeriodMs, 100, "without an idle period, idle is full rate");
});

// ---- the sampler's demand ----

/** A source with nothing to read that records what the sampler tells it. */
function recordingSource(calls: boolean[]): EnergySource {
  return {
    name: "fake",
    state: () => ({ name: "fake", status: "ok" }),
    devices: () => [],
    start: (_sink: (r: Reading[]) => void) => undefined,
    stop: async () => undefined,
    setActive: (active) => void calls.push(active),
  };
}

test("sampler: sources are told only when the set of active holders turns empty or non-empty", (t) => {
  const calls: boolean[] = [];
  const source = recordingSource(calls);
  const bare: EnergySource = { ...source, setActive: undefined }; // a source without an idle rate
  delete (bare as { setActive?: unknown }).setActive;
  const sampler = new Sampler([source, bare]);
  t.false(sampler.active);
  sampler.setDemand("windows", false);
  t.deepEqual(calls, [], "idle to idle: nothing to tell");
  sampler.setDemand("windows", true);
  sampler.setDemand("power", true);
  sampler.setDemand("windows", true);
  t.deepEqual(calls, [true]);
  sampler.setDemand("windows", false);
  t.deepEqual(calls, [true], "power still holds it");
  t.true(sampler.active);
  sampler.setDemand("power", false);
  t.deepEqual(calls, [true, false]);
  t.false(sampler.active);
});

test("sampler: with idleAfterMs, sources go idle only once no holder has been active for that long", async (t) => {
  const IDLE_AFTER_MS = 1500;
  const calls: boolean[] = [];
  const sampler = new Sampler([recordingSource(calls)], { idleAfterMs: IDLE_AFTER_MS });
  t.teardown(() => sampler.stop());
  sampler.setDemand("windows", true);
  sampler.setDemand("windows", false);
  t.true(sampler.active, "lingers at full rate");
  await sleep(50);
  // Back within the linger (a timer only ever runs late, so 50 ms is well inside 1.5 s): no second wake-up.
  sampler.setDemand("windows", true);
  sampler.setDemand("windows", false);
  const lastReleaseMs = performance.now();
  t.true(await until(() => calls.length >= 2, 5000));
  // Timers never fire early: idle no sooner than IDLE_AFTER_MS after the *last* release, not the first.
  t.true(performance.now() - lastReleaseMs >= IDLE_AFTER_MS - 1, "the linger counts from the last release");
  t.deepEqual(calls, [true, false]);
  t.false(sampler.active);
});

// ---- configuration ----

test("config: default 1000 ms, at least the sampling period (equal to it means never idle: test/e2e/idle-sampling-rates.test.ts)", (t) => {
  t.is(loadAgentConfig({ env: {} }).idleSamplingPeriodMs, 1000);
  t.is(loadAgentConfig({ env: { CARBONMON_IDLE_SAMPLING_PERIOD_MS: "250" } }).idleSamplingPeriodMs, 250);
  t.is(loadAgentConfig({ env: {}, argv: ["--idle-sampling-period-ms=400"] }).idleSamplingPeriodMs, 400);
  t.is(
    loadAgentConfig({ env: { CARBONMON_SAMPLING_PERIOD_MS: "2000" } }).idleSamplingPeriodMs,
    2000,
    "unset: never below a long sampling period",
  );
  const below = t.throws(() =>
    loadAgentConfig({ env: { CARBONMON_SAMPLING_PERIOD_MS: "200", CARBONMON_IDLE_SAMPLING_PERIOD_MS: "150" } }),
  ) as ConfigError;
  t.true(below instanceof ConfigError);
  t.deepEqual(below.problems, [
    'CARBONMON_IDLE_SAMPLING_PERIOD_MS="150": must be at least CARBONMON_SAMPLING_PERIOD_MS (200 ms); set it equal to sample at full rate always',
  ]);
  const flag = t.throws(() =>
    loadAgentConfig({ env: { CARBONMON_SAMPLING_PERIOD_MS: "2000" }, argv: ["--idle-sampling-period-ms", "1000"] }),
  ) as ConfigError;
  t.regex(flag.message, /CARBONMON_IDLE_SAMPLING_PERIOD_MS="1000": must be at least CARBONMON_SAMPLING_PERIOD_MS \(2000 ms\)/);
  const bad = t.throws(() => loadAgentConfig({ env: { CARBONMON_IDLE_SAMPLING_PERIOD_MS: "soon" } })) as ConfigError;
  t.deepEqual(bad.problems, ['CARBONMON_IDLE_SAMPLING_PERIOD_MS="soon": expected a whole number from 10 to 60000']);
});
