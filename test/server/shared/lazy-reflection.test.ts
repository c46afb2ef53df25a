/** Reflection is built on its first call (not at start), and then serves both protocol versions. */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { credentials, loadPackageDefinition, Server, ServerCredentials, type Client } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import test from "ava";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";
import { addLazyReflection } from "../../../server/shared/lazy-reflection.js";

type Ctor = new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client & Record<string, any>;
const protoDir = join(dirname(createRequire(import.meta.url).resolve("@grpc/reflection")), "../proto/grpc/reflection");

function reflectionClient(version: "v1" | "v1alpha"): Ctor {
  const pkg: any = loadPackageDefinition(loadSync(join(protoDir, version, "reflection.proto"), { keepCase: true }));
  return pkg.grpc.reflection[version].ServerReflection as Ctor;
}

function listServices(address: string, version: "v1" | "v1alpha"): Promise<string[]> {
  const client = new (reflectionClient(version))(address, credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const stream = client.ServerReflectionInfo();
    stream.on("data", (res: { list_services_response: { service: Array<{ name: string }> } }) => {
      resolve(res.list_services_response.service.map((s) => s.name));
      stream.end();
      client.close();
    });
    stream.on("error", reject);
    stream.write({ list_services: "" });
  });
}

test("reflection loads its definitions on the first reflection call, once, and answers v1 and v1alpha", async (t) => {
  const server = new Server();
  new HealthImplementation({ "": "SERVING" }).addToServer(server);
  let loads = 0;
  addLazyReflection(server, ["grpc.health.v1.Health"], () => {
    loads++;
    return loadSync(healthProtoPath, { keepCase: true });
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  t.teardown(() => server.forceShutdown());
  t.is(loads, 0, "nothing loaded at start");
  t.deepEqual(await listServices(`127.0.0.1:${port}`, "v1"), ["grpc.health.v1.Health"]);
  t.deepEqual(await listServices(`127.0.0.1:${port}`, "v1alpha"), ["grpc.health.v1.Health"]);
  t.is(loads, 1, "loaded once, on the first call");
});
