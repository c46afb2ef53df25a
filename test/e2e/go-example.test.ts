/**
 * The Go example (examples/go): build.sh generates the stubs from the contract with Debian's protoc,
 * protoc-gen-go and protoc-gen-go-grpc (the go_package options name their import paths) and builds
 * offline against /usr/share/gocode; the binary then talks to a real agent (fake NVML, one GPU at 300 W,
 * pricing through the intensity service) and a real intensity service (static, DE=300).
 * Needs golang-go, protoc-gen-go, golang-google-grpc-dev, golang-github-golang-protobuf-1-5-dev,
 * protobuf-compiler and libprotobuf-dev (.ci/run installs them).
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
const BUILD = fileURLToPath(new URL("../../examples/go/build.sh", import.meta.url));

test("examples/go builds offline from the protos and measures a window on a real agent", async (t) => {
  t.timeout(180_000);
  const out = mkdtempSync(join(tmpdir(), "carbonmon-go-"));
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 300, ms: 1000 }] }] });
  t.teardown(() => {
    rmSync(out, { recursive: true, force: true });
    nvml.cleanup();
  });
  const built = await run("bash", [BUILD, out], { timeout: 170_000 });
  t.regex(built.stdout, /built .*carbonmon-go-example from 2 protos/);

  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300" });
  t.teardown(() => intensity.close());
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_LOCATION: "DE",
  });
  t.teardown(() => agent.close());

  const { stdout } = await run(join(out, "carbonmon-go-example"), [agent.running.address, intensity.running.address, "DE"], {
    timeout: 30_000,
  });
  t.log(stdout);
  t.regex(stdout, /: 1 GPU\(s\), agent 0\.1\.0/);
  const win = /window go-example: time ([\d.]+) s, total ([\d.]+) J, carbon CARBON_STATUS_(\w+)/.exec(stdout);
  t.truthy(win, "the window line");
  const [timeS, totalJ] = [Number(win![1]), Number(win![2])];
  t.true(timeS >= 0.5, `time ${timeS}`);
  t.true(Math.abs(totalJ - 300 * timeS) <= 0.15 * 300 * timeS + 15, `${totalJ} J over ${timeS} s at 300 W`);
  t.not(win![3], "DISABLED", "the agent priced the window");
  const gpu = /^ {2}gpu 0: ([\d.]+) J ± [\d.]+ J, ([\d.]+) g$/m.exec(stdout);
  t.truthy(gpu);
  if (win![3] !== "PENDING") t.true(Math.abs(Number(gpu![2]) - (Number(gpu![1]) / 3.6e6) * 300) < 1e-5, "grams at 300 g/kWh");
  t.regex(stdout, /^power #0 gpu 0: 300\.0 W$/m);
  t.regex(stdout, /^power #1 gpu 0: 300\.0 W$/m);
  t.regex(stdout, /^intensity DE: 300\.0 g\/kWh from static \(INTENSITY_SOURCE_CONFIGURED\)$/m);
});
