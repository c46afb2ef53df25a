/**
 * Server reflection, checked as a strict client uses it: from the reflection answers alone (no carbonmon
 * .proto, no generated code) a @bufbuild/protobuf registry is built (createFileRegistry fails on a missing
 * dependency or a misnamed file) and every RPC of both services is called dynamically, through reflection
 * v1 and v1alpha. A method added to the contract without a request below fails the test.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import test from "ava";
import { fakeNvml } from "../../helpers/fake-nvml.js";
import { startTestAgent, startTestIntensity } from "../../helpers/grpc.js";
import { AGENT, AGENT_CALLS, INTENSITY, INTENSITY_CALLS, type ReflectionCall } from "../../helpers/reflection-calls.js";
import { dynamicCall, Reflection, type ReflectionVersion } from "../../helpers/strict-reflection.js";

async function callEvery(
  t: any,
  address: string,
  service: string,
  version: ReflectionVersion,
  calls: readonly ReflectionCall[],
): Promise<void> {
  const reflection = new Reflection(address, version);
  t.teardown(() => reflection.close());
  const listed = await reflection.listServices();
  t.true(listed.includes(service), `${service} listed`);
  t.true(listed.includes("grpc.health.v1.Health"));

  const registry = await reflection.registryFor([service]);
  const desc = registry.getService(service)!;
  t.is(
    desc.file.proto.name,
    service.startsWith("carbonmon.agent") ? "carbonmon/agent/v1/agent.proto" : "carbonmon/intensity/v1/intensity.proto",
  );
  t.deepEqual(
    desc.methods.map((m) => m.name).sort(),
    [...new Set(calls.map(([m]) => m))].sort(),
    "every RPC of the reflected service has a call here",
  );
  for (const [method, request, check] of calls) {
    const res = await dynamicCall(address, registry, `${service}/${method}`, request).then(
      ([first]) => first,
      (err: { code: number; details: string }) => ({ code: err.code, details: err.details }),
    );
    t.true(check(res as JsonObject), `${method} answered ${JSON.stringify(res).slice(0, 300)}`);
  }
}

for (const version of ["v1", "v1alpha"] as const) {
  test(`reflection ${version}: every EnergyMonitor RPC called dynamically from the reflected descriptors alone`, async (t) => {
    const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 300, ms: 1000 }] }] });
    const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath });
    t.teardown(async () => {
      await agent.close();
      nvml.cleanup();
    });
    await callEvery(t, agent.running.address, AGENT, version, AGENT_CALLS);
  });

  test(`reflection ${version}: every CarbonIntensity RPC called dynamically from the reflected descriptors alone`, async (t) => {
    const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300" });
    t.teardown(() => intensity.close());
    await callEvery(t, intensity.running.address, INTENSITY, version, INTENSITY_CALLS);
  });
}

test("reflected files are the compiler's: import names, dependency lists, map entries, proto3 optionals", async (t) => {
  const agent = await startTestAgent();
  t.teardown(() => agent.close());
  const reflection = new Reflection(agent.running.address);
  t.teardown(() => reflection.close());
  const files = await reflection.fileContainingSymbol("carbonmon.agent.v1.EnergyMonitor.EndWindow");
  const names = files.map((f) => f.name);
  t.is(names[0], "carbonmon/agent/v1/agent.proto");
  t.deepEqual([...names].sort(), [
    "carbonmon/agent/v1/agent.proto",
    "carbonmon/intensity/v1/intensity.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/timestamp.proto",
  ]);
  const agentFile = files[0]!;
  t.deepEqual(agentFile.dependency, [
    "carbonmon/intensity/v1/intensity.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/timestamp.proto",
  ]);
  const measurement = agentFile.messageType.find((m) => m.name === "Measurement")!;
  const entry = measurement.nestedType.find((m) => m.name === "GpuEnergyJEntry");
  t.true(entry?.options?.mapEntry, "map fields have compiler-named XxxEntry messages with map_entry set");
  const begin = agentFile.messageType.find((m) => m.name === "BeginWindowRequest")!;
  t.true(begin.field.find((f) => f.name === "cuda_visible_devices")?.proto3Optional, "proto3 optional kept");
  t.is(agentFile.options?.goPackage, "github.com/carbonmon/carbonmon/gen/go/carbonmon/agent/v1;agentv1");

  const byName = await reflection.fileByFilename("grpc/health/v1/health.proto");
  t.is(byName[0]!.package, "grpc.health.v1");
  await t.throwsAsync(reflection.fileContainingSymbol("carbonmon.agent.v1.NoSuchThing"), { message: /not found/ });
});

test("requests on one stream are answered in order; bytes that are no ServerReflectionRequest end the stream with INVALID_ARGUMENT", async (t) => {
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300" });
  const client = new grpc.Client(intensity.running.address, grpc.credentials.createInsecure());
  t.teardown(async () => (client.close(), await intensity.close()));
  const bytes = (b: Buffer) => b;
  const stream = client.makeBidiStreamRequest("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", bytes, bytes);
  const answers: Buffer[] = [];
  const ended = new Promise<grpc.StatusObject>((resolve) => stream.on("status", resolve));
  stream.on("data", (b: Buffer) => answers.push(b));
  stream.on("error", () => undefined);
  // Field 7 (list_services, a string) then field 3 (file_by_filename): two valid requests, then garbage.
  const request = (field: number, value: string) => Buffer.concat([Buffer.from([(field << 3) | 2, value.length]), Buffer.from(value)]);
  stream.write(request(7, "*"));
  stream.write(request(3, "carbonmon/intensity/v1/intensity.proto"));
  stream.write(Buffer.from([0x3a, 0x7f, 0x01])); // field 7, a length of 127 with one byte after it
  const status = await ended;
  t.is(status.code, grpc.status.INVALID_ARGUMENT);
  t.regex(status.details, /not a ServerReflectionRequest/);
  t.is(answers.length, 2, "the two valid requests were answered");
  t.true(answers[0]!.includes(Buffer.from("carbonmon.intensity.v1.CarbonIntensity")), "first: the service list");
  t.true(answers[1]!.includes(Buffer.from("carbonmon/intensity/v1/intensity.proto")), "second: the file");
});
