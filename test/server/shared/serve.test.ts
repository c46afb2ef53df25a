import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { credentials, loadPackageDefinition, status, type Client, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import test from "ava";
import { protoPath as healthProtoPath } from "grpc-health-check";
import type { GetHostRequest, GetHostResponse } from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import type { ListProvidersRequest, ListProvidersResponse } from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { call, startTestAgent, startTestIntensity } from "../../helpers/grpc.js";

type Ctor = new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client & Record<string, any>;

const require = createRequire(import.meta.url);
const reflectionProto = join(dirname(require.resolve("@grpc/reflection")), "../proto/grpc/reflection/v1/reflection.proto");

function clientFor(protoFile: string, path: string[]): Ctor {
  let node: any = loadPackageDefinition(loadSync(protoFile, { keepCase: true, enums: String }));
  for (const p of path) node = node[p];
  return node as Ctor;
}

const HealthClient = clientFor(healthProtoPath, ["grpc", "health", "v1", "Health"]);
const ReflectionClient = clientFor(reflectionProto, ["grpc", "reflection", "v1", "ServerReflection"]);

function reflect(address: string, request: object): Promise<any> {
  const client = new ReflectionClient(address, credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const stream = client.ServerReflectionInfo();
    stream.on("data", (res: unknown) => {
      resolve(res);
      stream.end();
      client.close();
    });
    stream.on("error", reject);
    stream.write(request);
  });
}

function health(address: string, service: string): Promise<string> {
  const client = new HealthClient(address, credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.Check({ service }, (err: ServiceError | null, res: { status: string }) => {
      client.close();
      return err ? reject(err) : resolve(res.status);
    }),
  );
}

test("the agent answers health, reflection and GetHost on 127.0.0.1:0", async (t) => {
  const agent = await startTestAgent();
  t.teardown(() => agent.close());
  const address = agent.running.address;
  t.regex(address, /^127\.0\.0\.1:\d+$/);
  t.not(agent.running.port, 0);

  t.is(await health(address, ""), "SERVING");
  t.is(
    await health(address, "carbonmon.agent.v1.EnergyMonitor"),
    "NOT_SERVING",
    "no device can be read (test/server/agent/api/metrics.test.ts has the rest)",
  );

  const listed = await reflect(address, { list_services: "" });
  const names = listed.list_services_response.service.map((s: { name: string }) => s.name);
  t.true(names.includes("carbonmon.agent.v1.EnergyMonitor"));
  t.true(names.includes("grpc.health.v1.Health"));

  const file = await reflect(address, { file_containing_symbol: "carbonmon.agent.v1.EnergyMonitor" });
  t.true(file.file_descriptor_response.file_descriptor_proto.length > 0);

  const host = await call<GetHostRequest, GetHostResponse>(agent.client, agent.client.getHost, {});
  t.is(host.agentVersion, "0.1.0");
  t.truthy(host.hostname);
  t.deepEqual(host.gpus, []);
  t.is(host.backends.find((b) => b.name === "nvml")?.reason.includes("cannot load"), true);
});

test("the intensity service answers health, reflection and ListProviders through the generated client", async (t) => {
  const intensity = await startTestIntensity();
  t.teardown(() => intensity.close());
  const address = intensity.running.address;
  t.is(await health(address, "carbonmon.intensity.v1.CarbonIntensity"), "SERVING");
  const listed = await reflect(address, { list_services: "" });
  t.true(listed.list_services_response.service.some((s: { name: string }) => s.name === "carbonmon.intensity.v1.CarbonIntensity"));

  const providers = await call<ListProvidersRequest, ListProvidersResponse>(intensity.client, intensity.client.listProviders, {});
  t.deepEqual(
    providers.providers.map((p) => p.name),
    ["electricitymaps", "watttime", "ukgrid", "static", "offline"],
  );
});

test("shutdown marks the services NOT_SERVING and refuses new calls", async (t) => {
  const agent = await startTestAgent();
  const address = agent.running.address;
  await agent.running.shutdown(500);
  const err = await t.throwsAsync(health(address, ""));
  t.is((err as ServiceError).code, status.UNAVAILABLE);
  await agent.close();
});

test("a port already in use fails start-up with the address in the message", async (t) => {
  const agent = await startTestAgent();
  t.teardown(() => agent.close());
  const err = await t.throwsAsync(startTestAgent({ CARBONMON_AGENT_LISTEN: agent.running.address }));
  t.regex(err!.message, new RegExp(`cannot listen on ${agent.running.address.replace(/\./g, "\\.")}`));
});

test("the health service as upstream's health.proto describes it: Check, Watch (unknown, then updates) and List", async (t) => {
  const agent = await startTestAgent();
  t.teardown(() => agent.close());
  const address = agent.running.address;
  const client = new HealthClient(address, credentials.createInsecure());
  t.teardown(() => client.close());
  const err = await health(address, "no.such.Service").catch((e: ServiceError) => e);
  t.is((err as ServiceError).code, status.NOT_FOUND, "Check of an unknown service");
  // Watch: SERVICE_UNKNOWN at once, then every status set afterwards.
  const seen: string[] = [];
  let arrived = () => undefined as void;
  const watch = client.Watch({ service: "later.Service" });
  watch.on("data", (r: { status: string }) => (seen.push(r.status), arrived()));
  watch.on("error", () => undefined); // CANCELLED, once the test cancels it
  const got = (n: number) =>
    new Promise<void>((resolve) => {
      arrived = () => void (seen.length >= n && resolve());
      arrived();
    });
  await got(1);
  agent.running.health.setStatus("later.Service", "SERVING");
  await got(2);
  agent.running.health.setStatus("later.Service", "NOT_SERVING");
  await got(3);
  watch.cancel();
  t.deepEqual(seen, ["SERVICE_UNKNOWN", "SERVING", "NOT_SERVING"]);
  const listed = await new Promise<{ statuses: Record<string, { status: string }> }>((resolve, reject) =>
    client.List({}, (e: ServiceError | null, res: { statuses: Record<string, { status: string }> }) => (e ? reject(e) : resolve(res))),
  );
  t.is(listed.statuses[""]?.status, "SERVING");
  t.is(listed.statuses["later.Service"]?.status, "NOT_SERVING");
  t.truthy(listed.statuses["carbonmon.agent.v1.EnergyMonitor"]);
});
