/**
 * The Python package (clients/python): `pip install ./clients/python` into a fresh virtual environment with
 * Debian's python3 (no index: the build needs no download), then its pytest suite against a real agent
 * (fake NVML: two GPUs at 300 and 150 W) and a real intensity service (an imitation ElectricityMaps with the
 * recorded US-MIDW-MISO history re-dated to end now, coordinates 42.2776,-83.7409 → US-MIDW-MISO; static
 * DE=300 behind it, which prices the agent's windows), plus an imitation ipinfo.
 * Needs python3, python3-venv, python3-pip, python3-grpcio, python3-protobuf, python3-pytest,
 * protobuf-compiler, protobuf-compiler-grpc and libprotobuf-dev (.ci/run installs them).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { FAKE_EM_TOKEN, recordedHistory, startFakeElectricityMaps } from "../helpers/fake-electricitymaps.js";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent, startTestIntensity } from "../helpers/grpc.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const PACKAGE = join(ROOT, "clients/python");
const HOUR = 3_600_000;
const MICHIGAN = { lat: 42.2776, lon: -83.7409, zone: "US-MIDW-MISO" };

const work = mkdtempSync(join(tmpdir(), "carbonmon-pypkg-"));
const venv = join(work, "venv");
const python = join(venv, "bin/python");

test.before(async () => {
  // --system-site-packages: Debian's grpcio, protobuf and pytest satisfy the package's dependencies offline.
  await run("/usr/bin/python3", ["-m", "venv", "--system-site-packages", venv]);
});
test.after.always(() => rmSync(work, { recursive: true, force: true }));

/** Runs pytest on the package's tests (selected by -m) with `env`; resolves with its output and counts. */
export async function pytest(marker: string, env: Record<string, string>): Promise<{ out: string; passed: number; failed: number }> {
  const args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker, join(PACKAGE, "tests")];
  const result = await run(python, args, { cwd: work, env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", ...env }, timeout: 170_000 }).then(
    (r) => r.stdout + r.stderr,
    (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ""}${err.stderr ?? ""}`,
  );
  const count = (word: string): number => Number(new RegExp(`(\\d+) ${word}`).exec(result)?.[1] ?? 0);
  return { out: result, passed: count("passed"), failed: count("failed") + count("error") };
}

test.serial("pip install ./clients/python works offline and builds the stubs from proto/", async (t) => {
  t.timeout(120_000);
  const { stdout } = await run(join(venv, "bin/pip"), ["install", "--no-index", "--no-cache-dir", PACKAGE], { cwd: work, timeout: 110_000 });
  t.regex(stdout, /Successfully installed carbonmon-0\.1\.0/);
  const probe = await run(python, ["-c", "import carbonmon, carbonmon.zeus; from carbonmon.agent.v1 import agent_pb2_grpc; from carbonmon.intensity.v1 import intensity_pb2; print(carbonmon.__version__, carbonmon.__file__)"], { cwd: work });
  t.regex(probe.stdout, new RegExp(`^0\\.1\\.0 ${venv.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/lib/python3[.\\d]*/site-packages/carbonmon/__init__\\.py\\n$`), "the installed copy, not the sources");
});

test.serial("pytest: the core API, the Zeus drop-in and sync_execution against a real agent and intensity service", async (t) => {
  t.timeout(180_000);
  const lastHour = Math.floor(Date.now() / HOUR) * HOUR;
  const history = recordedHistory(lastHour);
  const historyFile = join(work, "history.json");
  writeFileSync(historyFile, JSON.stringify({ zone: MICHIGAN.zone, history }));
  const em = await startFakeElectricityMaps({ series: { [MICHIGAN.zone]: history }, locations: [MICHIGAN], nowMs: () => Date.now() });
  const ipinfo = createServer((_req, res) => res.end(JSON.stringify({ ip: "35.3.237.23", loc: `${MICHIGAN.lat},${MICHIGAN.lon}`, country: "US" })));
  await new Promise<void>((resolve) => ipinfo.listen(0, "127.0.0.1", resolve));
  const intensity = await startTestIntensity({
    CARBONMON_PROVIDERS: "electricitymaps,static",
    ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
    CARBONMON_INTENSITY_CONSTANTS: "DE=300",
  });
  const nvml = fakeNvml({ gpus: [300, 150].map((powerW) => ({ profile: [{ powerW, ms: 1000 }] })) });
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath, CARBONMON_INTENSITY_ADDR: intensity.running.address, CARBONMON_LOCATION: "DE" });
  t.teardown(async () => {
    await agent.close();
    await intensity.close();
    await em.close();
    ipinfo.close();
    nvml.cleanup();
  });
  const r = await pytest("not timetravel", {
    CARBONMON_AGENT_ADDR: agent.running.address,
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_IPINFO_URL: `http://127.0.0.1:${(ipinfo.address() as AddressInfo).port}/json`,
    CARBONMON_TEST_POWER_W: "300,150",
    CARBONMON_TEST_G_PER_KWH: "300",
    CARBONMON_TEST_EM_HISTORY: historyFile,
  });
  t.log(r.out.trim().split("\n").slice(-15).join("\n"));
  t.is(r.failed, 0, r.out);
  t.true(r.passed >= 20, `${r.passed} passed`);
});
