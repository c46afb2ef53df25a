import test from "ava";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent, startTestIntensity, tempDataDir } from "../helpers/grpc.js";
import { createAgentClient } from "../../client/index.js";
import { carbonmon } from "./cli-process.js";

const POWER_W = 120;

function setup(t: { teardown(fn: () => void): void }) {
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: POWER_W, ms: 1000 }] }] });
  const data = tempDataDir();
  t.teardown(() => (nvml.cleanup(), data.cleanup()));
  return { CARBONMON_NVML_LIBRARY: nvml.libraryPath, CARBONMON_DATA_DIR: data.dir };
}

test("run measures the command on an in-process agent, prints a table on stderr and exits with its code", async (t) => {
  const r = await carbonmon(["run", "--", process.execPath, "-e", "setTimeout(()=>process.exit(3),600)"], setup(t));
  t.is(r.code, 3, r.stderr);
  t.is(r.stdout, "");
  const time = Number(/window \S+: ([\d.]+) s/.exec(r.stderr)?.[1]);
  const energy = Number(/^gpu:0\s+([\d.]+)\s+([\d.]+)/m.exec(r.stderr)?.[1]);
  t.true(time >= 0.6 && time < 5, r.stderr);
  t.true(Math.abs(energy - POWER_W * time) <= 0.25 * POWER_W * time, `${energy} J in ${time} s`);
  t.regex(r.stderr, /^total\s+[\d.]+\s+[\d.]+/m);
  t.regex(r.stderr, /carbon: disabled \(.+\)/);
});

test("run --json prints the CarbonEmissionMeasurement with Zeus's names", async (t) => {
  const r = await carbonmon(["run", "--json", "--gpus", "0", "--key", "job/step-1", "--", process.execPath, "-e", "setTimeout(()=>{},300)"], setup(t));
  t.is(r.code, 0, r.stderr);
  const m = JSON.parse(r.stderr);
  for (const name of ["time", "gpu_energy", "gpu_carbon_emission", "cpu_energy", "cpu_carbon_emission", "dram_energy", "dram_carbon_emission"]) t.true(name in m, name);
  t.true(m.time >= 0.3);
  t.true(m.gpu_energy["0"] > 0);
  t.is(m.measurement.key, "job/step-1");
});

test("run with an intensity service: grams per device in the table and in --json (Zeus's names)", async (t) => {
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=400" });
  t.teardown(() => intensity.close());
  const env = { ...setup(t), CARBONMON_INTENSITY_ADDR: intensity.running.address, CARBONMON_LOCATION: "DE" };
  const text = await carbonmon(["run", "--", process.execPath, "-e", "setTimeout(()=>{},300)"], env);
  t.is(text.code, 0, text.stderr);
  const row = /^gpu:0\s+([\d.]+)\s+[\d.]+\s+([\d.]+)$/m.exec(text.stderr);
  t.truthy(row, text.stderr);
  t.true(Math.abs(Number(row![2]) - (Number(row![1]) / 3.6e6) * 400) < 1e-4, text.stderr);
  t.regex(text.stderr, /^carbon: final$/m);
  const json = await carbonmon(["run", "--json", "--", process.execPath, "-e", "setTimeout(()=>{},300)"], env);
  const m = JSON.parse(json.stderr);
  t.true(m.gpu_energy["0"] > 0);
  t.true(Math.abs(m.gpu_carbon_emission["0"] - (m.gpu_energy["0"] / 3.6e6) * 400) <= 1e-9 * m.gpu_carbon_emission["0"]);
  t.is(m.measurement.carbonStatus, "CARBON_STATUS_FINAL");
  t.is(m.measurement.carbonPeriods[0].intensity.provider, "static");
});

test("run of a command that cannot start exits 127 and still ends the window", async (t) => {
  const agent = await startTestAgent(setup(t));
  t.teardown(() => agent.close());
  const r = await carbonmon(["run", "--agent", agent.running.address, "--key", "missing/1", "--", "/nonexistent/cmd"]);
  t.is(r.code, 127);
  t.regex(r.stderr, /cannot run \/nonexistent\/cmd: command not found/);
  const client = createAgentClient(agent.running.address);
  t.teardown(() => client.close());
  t.deepEqual(await client.listWindows(), []);
  t.true((await client.getWindow("missing/1")).measurement.ended);
});

test("run: no command, an unknown option, an unreachable agent", async (t) => {
  t.is((await carbonmon(["run"])).code, 2);
  const bad = await carbonmon(["run", "--frobnicate", "--", "true"]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /Unknown option '--frobnicate'/);
  const down = await carbonmon(["run", "--agent", "127.0.0.1:1", "--", "true"]);
  t.is(down.code, 1);
  t.regex(down.stderr, /^carbonmon: cannot reach the agent at 127\.0\.0\.1:1 \(UNAVAILABLE: .*\)\n$/);
});

test("run without --agent where an agent already uses the data directory: refused with the way out, and the agent's windows are untouched", async (t) => {
  const env = setup(t);
  const agent = await startTestAgent(env);
  t.teardown(() => agent.close());
  const client = createAgentClient(agent.running.address);
  t.teardown(() => client.close());
  await client.beginWindow("theirs");
  const refused = await carbonmon(["run", "--", "true"], env);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /^carbonmon: another carbonmon agent is using the data directory .* \(hint: .*use --agent to measure through the running one\)\n$/);
  t.deepEqual((await client.listWindows()).map((w) => w.key), ["theirs"]);
});

test("run --help lists its options (and --help after -- belongs to the command)", async (t) => {
  const r = await carbonmon(["run", "--help"]);
  t.is(r.code, 0);
  for (const o of ["--agent", "--gpus", "--key", "--json"]) t.true(r.stdout.includes(o), o);
});
