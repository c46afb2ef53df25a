/** Scoped tokens on both services: UNAUTHENTICATED vs PERMISSION_DENIED, health left open, denials logged once. */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { credentials, loadPackageDefinition, Metadata, status, type Client } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import test from "ava";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { createAgentClient, createIntensityClient, type CarbonmonClientError } from "../../../../client/index.js";
import { startAgent } from "../../../../server/agent/main.js";
import { loadAgentConfig, loadIntensityConfig } from "../../../../server/shared/config.js";
import { startIntensity } from "../../../../server/intensity/main.js";
import { principalOf } from "../../../../server/shared/security/principal.js";
import { PRINCIPAL_NAME } from "../../../../server/shared/security/tokens.js";
import { tempDataDir } from "../../../helpers/grpc.js";
import { capturingLogger, writeTokens } from "../../../helpers/security.js";

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

async function agentWithTokens(t: import("ava").ExecutionContext, principals: Record<string, string[]>, env: Record<string, string> = {}) {
  const data = tempDataDir();
  const { file, token } = writeTokens(data.dir, principals);
  const captured = capturingLogger();
  const config = loadAgentConfig({
    env: {
      CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
      CARBONMON_DATA_DIR: data.dir,
      CARBONMON_NVML_LIBRARY: "/nonexistent/libnvidia-ml.so.1",
      CARBONMON_POWERCAP_ROOT: `${data.dir}/no-powercap`,
      CARBONMON_SIMULATED_GPU: "true",
      CARBONMON_AUTH_TOKENS_FILE: file,
      ...env,
    },
  });
  const agent = await startAgent(config, captured.log);
  const clients: Array<{ close(): void }> = [];
  const as = (name?: string, raw?: string) => {
    const c = createAgentClient(agent.running.address, { retries: 0, security: (raw ?? name) ? { token: raw ?? token[name!]! } : {} });
    clients.push(c);
    return c;
  };
  t.teardown(async () => {
    for (const c of clients) c.close();
    await agent.running.shutdown(1000);
    data.cleanup();
  });
  return { agent, as, token, captured, data };
}

const code = async (p: Promise<unknown>): Promise<string> =>
  (
    (await p.then(
      () => undefined,
      (e: unknown) => e,
    )) as CarbonmonClientError | undefined
  )?.codeName ?? "OK";

test("no token or an unknown one: UNAUTHENTICATED; a known one without the scope: PERMISSION_DENIED naming it", async (t) => {
  const { as, captured } = await agentWithTokens(t, { reader: ["windows:read"], writer: ["windows:write"] });
  t.is(await code(as().getHost()), "UNAUTHENTICATED");
  t.is(await code(as(undefined, "cmt_not-a-real-token-UNKNOWN-4711").getHost()), "UNAUTHENTICATED");
  t.is(await code(as("reader").getHost()), "OK");
  const denied = (await as("reader")
    .beginWindow("job-1")
    .catch((e: unknown) => e)) as CarbonmonClientError;
  t.is(denied.codeName, "PERMISSION_DENIED");
  t.regex(denied.details, /BeginWindow needs scope windows:write/);
  t.regex(denied.details, /token 'reader'/);
  t.is(await code(as("writer").getHost()), "PERMISSION_DENIED", "GetHost needs windows:read");
  t.is(await code(as("writer").beginWindow("job-2")), "OK");

  // Each denied call: one warn line with the principal's name, the method and the reason; never the token.
  const warns = captured.lines.filter((l) => l.msg === "call denied");
  t.is(warns.length, 4);
  t.deepEqual(
    warns.map((w) => [w.level, w.principal, w.method, w.code]),
    [
      [40, "(none)", "/carbonmon.agent.v1.EnergyMonitor/GetHost", "UNAUTHENTICATED"],
      [40, "(none)", "/carbonmon.agent.v1.EnergyMonitor/GetHost", "UNAUTHENTICATED"],
      [40, "reader", "/carbonmon.agent.v1.EnergyMonitor/BeginWindow", "PERMISSION_DENIED"],
      [40, "writer", "/carbonmon.agent.v1.EnergyMonitor/GetHost", "PERMISSION_DENIED"],
    ],
  );
  t.regex(String(warns[1]!.reason), /unknown token/);
  t.false(captured.text().includes("UNKNOWN-4711"));
});

test("health checking is left open; reflection needs its scope", async (t) => {
  const { agent, token } = await agentWithTokens(t, { ops: ["reflection"] });
  const health = new HealthClient(agent.running.address, credentials.createInsecure());
  t.teardown(() => health.close());
  const served = await new Promise<string>((resolve, reject) =>
    health.Check({ service: "" }, (err: Error | null, res: { status: string }) => (err ? reject(err) : resolve(res.status))),
  );
  t.is(served, "SERVING", "without a token");
  // Reflection, as grpcurl calls it (a bidi stream).
  const list = async (bearer?: string): Promise<number> => {
    const client = new ReflectionClient(agent.running.address, credentials.createInsecure());
    const md = new Metadata();
    if (bearer) md.set("authorization", `Bearer ${bearer}`);
    try {
      return await new Promise<number>((resolve) => {
        const call = client.ServerReflectionInfo(md);
        call.on("data", () => {
          resolve(status.OK);
          call.end();
        });
        call.on("error", (e: { code: number }) => resolve(e.code));
        call.write({ list_services: "" });
      });
    } finally {
      client.close();
    }
  };
  t.is(await list(), status.UNAUTHENTICATED);
  t.is(await list(token.ops), status.OK);
});

test("the intensity service: every CarbonIntensity RPC needs intensity:read", async (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const { file, token } = writeTokens(data.dir, { agent: ["intensity:read"], other: ["windows:admin"] });
  const config = loadIntensityConfig({
    env: { CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0", CARBONMON_DATA_DIR: data.dir, CARBONMON_AUTH_TOKENS_FILE: file },
  });
  const server = await startIntensity(config, capturingLogger().log);
  t.teardown(() => server.running.shutdown(1000));
  const client = (tok?: string) => createIntensityClient(server.running.address, { retries: 0, security: tok ? { token: tok } : {} });
  const [none, other, agent] = [client(), client(token.other), client(token.agent)];
  t.teardown(() => [none, other, agent].forEach((c) => c.close()));
  t.is(await code(none.listProviders()), "UNAUTHENTICATED");
  t.is(await code(other.listProviders()), "PERMISSION_DENIED");
  t.is(await code(agent.listProviders()), "OK");
});

test("WatchPower without a token is refused before the stream starts; a changed tokens file applies on reload", async (t) => {
  const { agent, as, token, data } = await agentWithTokens(t, { old: ["windows:read"] });
  const stream = as().watchPower({ periodMs: 100 })[Symbol.asyncIterator]();
  t.is(((await stream.next().catch((e: unknown) => e)) as CarbonmonClientError).codeName, "UNAUTHENTICATED");
  t.is(await code(as("old").getHost()), "OK");
  const { token: fresh } = writeTokens(data.dir, { new: ["windows:read"] });
  t.is(await code(as(undefined, fresh.new).getHost()), "UNAUTHENTICATED", "not before the reload");
  agent.running.reload();
  t.is(await code(as(undefined, fresh.new).getHost()), "OK");
  t.is(await code(as(undefined, token.old).getHost()), "UNAUTHENTICATED", "the old file's tokens are gone");
});

test("a handler the interceptor never saw gets a principal with no scopes and no name a token can have (fails closed)", (t) => {
  const p = principalOf({ metadata: new Metadata() });
  t.is(p.scopes.size, 0);
  t.false(PRINCIPAL_NAME.test(p.name));
});
