/**
 * The README's client examples, extracted and run as they are (through the package's own
 * "carbonmon/client" export, its TypeScript sources under the "carbonmon-source" condition) against a real agent (fake NVML, one GPU at 300 W, pricing its windows) and
 * a real intensity service (a configured constant for DE).
 */
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import test from "ava";
import { runExample } from "./helpers/examples.js";
import { fakeNvml } from "./helpers/fake-nvml.js";
import { startTestAgent, startTestIntensity } from "./helpers/grpc.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

function examples(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Client library"), readme.indexOf("## Carbon intensity"));
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

test("every TypeScript example in the README runs against real servers and prints what it says", async (t) => {
  const blocks = examples();
  t.is(blocks.length, 3);
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 300, ms: 1000 }] }] });
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300" });
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_LOCATION: "DE",
  });
  const dir = join(ROOT, ".tmp", `readme-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  t.teardown(async () => {
    await agent.close();
    await intensity.close();
    nvml.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const env = { ...process.env, CARBONMON_AGENT: agent.running.address, CARBONMON_INTENSITY: intensity.running.address };
  // The examples are independent programs: run at once.
  const outputs = await Promise.all(
    blocks.map(async (code, i) => {
      return runExample(code, join(dir, `example-${i}`), { cwd: ROOT, env, timeout: 30_000 });
    }),
  );
  const [measure, watch, fleet] = outputs as [string, string, string];
  const [energy, grams] = [...measure.matchAll(/'0': ([\d.]+)/g)].map((m) => Number(m[1]));
  // The step sleeps 500 ms: the window lasts at least that (how much longer depends on the machine's load).
  const seconds = Number(/^trained (\d+\.\d\d) s /.exec(measure)?.[1]);
  t.true(seconds >= 0.5, measure);
  // 300 W for as long as the window lasted (its time is printed to 10 ms: up to 1.5 J of rounding).
  t.true(Math.abs(energy! - 300 * seconds) < 5, `300 W x ${seconds} s: ${measure}`);
  t.true(Math.abs(grams! - (energy! / 3.6e6) * 300) < 1e-6, `grams at 300 g/kWh: ${measure}`);
  t.deepEqual(
    watch
      .trim()
      .split("\n")
      .map((l) => l.split(" ")[0]),
    ["0n", "1n", "2n"],
  );
  t.regex(watch, /'0': 300/);
  const fleetLine = /^1 hosts, ([\d.]+) J, ([\d.]+) g, 0 failed\n300 g\/kWh from static\n$/.exec(fleet);
  t.truthy(fleetLine, fleet);
  t.true(Math.abs(Number(fleetLine![2]) - (Number(fleetLine![1]) / 3.6e6) * 300) < 1e-4, fleet);
});
