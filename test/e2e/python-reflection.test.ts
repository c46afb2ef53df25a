/**
 * Server reflection through Python's descriptor_pool, the strict client that rejected proto-loader's
 * descriptors ("google.protobuf.Duration is not defined", "map_entry should not be set explicitly"):
 * test/e2e/python/strict_reflection.py builds a pool from the reflection answers alone and calls every
 * RPC of both services dynamically (json_format), through reflection v1 and v1alpha.
 * Needs Debian's python3-grpcio (with python3-protobuf) and protobuf-compiler (for reflection.proto's own
 * stubs, the client's side of the protocol).
 */
import { execFile, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent, startTestIntensity } from "../helpers/grpc.js";
import { AGENT, AGENT_CALLS, INTENSITY, INTENSITY_CALLS, type ReflectionCall } from "../helpers/reflection-calls.js";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("python/strict_reflection.py", import.meta.url));
const REFLECTION_PROTO = join(dirname(createRequire(import.meta.url).resolve("@grpc/reflection/package.json")), "build/proto");
const PYTHON = "/usr/bin/python3";

const stubs = mkdtempSync(join(tmpdir(), "carbonmon-pyrefl-"));
test.before(() => {
  execFileSync("protoc", [
    "-I",
    REFLECTION_PROTO,
    `--python_out=${stubs}`,
    "grpc/reflection/v1/reflection.proto",
    "grpc/reflection/v1alpha/reflection.proto",
  ]);
});
test.after.always(() => rmSync(stubs, { recursive: true, force: true }));

async function pythonCalls(t: any, address: string, service: string, version: string, calls: readonly ReflectionCall[]): Promise<void> {
  const request = calls.map(([method, req]) => [`${service}/${method}`, req]);
  const { stdout } = await run(PYTHON, [SCRIPT, address, stubs, version, JSON.stringify(request)], {
    timeout: 60_000,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
  });
  const [head, ...answers] = stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  t.true(head.services.includes(service));
  t.deepEqual([...head.methods[service]].sort(), [...new Set(calls.map(([m]) => m))].sort(), "every RPC has a call");
  t.is(answers.length, calls.length);
  answers.forEach((a: any, i: number) => {
    const res = a.response ?? { code: a.code, details: a.details };
    t.true(calls[i]![2](res), `${a.method}: ${JSON.stringify(res).slice(0, 300)}`);
  });
}

for (const version of ["v1", "v1alpha"]) {
  test(`Python descriptor_pool (${version}): every EnergyMonitor RPC from reflection alone`, async (t) => {
    const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 300, ms: 1000 }] }] });
    const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath });
    t.teardown(async () => {
      await agent.close();
      nvml.cleanup();
    });
    await pythonCalls(t, agent.running.address, AGENT, version, AGENT_CALLS);
  });

  test(`Python descriptor_pool (${version}): every CarbonIntensity RPC from reflection alone`, async (t) => {
    const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300" });
    t.teardown(() => intensity.close());
    await pythonCalls(t, intensity.running.address, INTENSITY, version, INTENSITY_CALLS);
  });
}
