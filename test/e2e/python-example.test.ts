/**
 * The Python client example (examples/python): generate.sh builds stubs from the contract with protoc and
 * grpc_python_plugin, then measure.py talks to a real agent (fake NVML, one GPU at 300 W, pricing its
 * windows through the intensity service) and a real intensity service (static provider, DE=300).
 *
 * Needs Debian's python3-grpcio (with python3-protobuf), protobuf-compiler, protobuf-compiler-grpc and the
 * well-known types of libprotobuf-dev; CI installs them (.ci/run).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent, startTestIntensity } from "../helpers/grpc.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const EXAMPLE = join(ROOT, "examples", "python");
const PYTHON = "/usr/bin/python3";

test("generate.sh + measure.py: a window of ~1 s on a 300 W GPU, and 300 g/kWh for DE from static", async (t) => {
  t.timeout(60_000);
  const gen = mkdtempSync(join(tmpdir(), "carbonmon-pygen-"));
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 300, ms: 1000 }] }] });
  t.teardown(() => {
    rmSync(gen, { recursive: true, force: true });
    nvml.cleanup();
  });

  const generated = await run("bash", [join(EXAMPLE, "generate.sh"), gen], { cwd: ROOT });
  t.regex(generated.stdout, /generated 2 protos/);

  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300" });
  t.teardown(() => intensity.close());
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_LOCATION: "DE",
  });
  t.teardown(() => agent.close());

  const { stdout } = await run(PYTHON, [join(EXAMPLE, "measure.py"), agent.running.address, intensity.running.address], {
    cwd: EXAMPLE,
    env: { ...process.env, CARBONMON_PYTHON_GEN: gen, PYTHONDONTWRITEBYTECODE: "1" },
    timeout: 30_000,
  });
  t.log(stdout);

  t.regex(stdout, /1 GPU\(s\)/);
  const time = /window python-example: time ([\d.]+) s/.exec(stdout);
  t.truthy(time, "the window's time is printed");
  const timeS = Number(time![1]);
  t.true(timeS >= 0.95 && timeS < 5, `time ${timeS} s`);

  const gpu = /^ {2}gpu 0: ([\d.]+) J/m.exec(stdout);
  t.truthy(gpu, "GPU 0's energy is printed");
  const energyJ = Number(gpu![1]);
  // 300 W for the window's own time; a generous band for scheduling and edge interpolation.
  t.true(Math.abs(energyJ - 300 * timeS) <= 0.15 * 300 * timeS + 15, `gpu 0: ${energyJ} J over ${timeS} s`);
  t.true(energyJ > 250 && energyJ < 1500, `gpu 0: ${energyJ} J`);

  // The agent priced the window at the same 300 g/kWh: grams = joules / 3.6e6 × 300 (printed to 4 decimals).
  const carbon = /^ {2}carbon: FINAL, ([\d.]+) g$/m.exec(stdout);
  t.truthy(carbon, "the window's grams are printed");
  t.true(Math.abs(Number(carbon![1]) - (energyJ / 3.6e6) * 300) < 0.0002, `${carbon![1]} g for ${energyJ} J`);
  t.regex(stdout, /^intensity DE: 300 g\/kWh from static \(CONFIGURED/m);
});

test("measure.py explains its usage and exits 2 without addresses", async (t) => {
  const error = await t.throwsAsync(run(PYTHON, [join(EXAMPLE, "measure.py")], { cwd: EXAMPLE }));
  t.is((error as unknown as { code: number }).code, 2);
  t.regex((error as unknown as { stderr: string }).stderr, /Usage:/);
});
