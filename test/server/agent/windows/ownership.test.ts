/** Window ownership and per-principal limits, through real gRPC with scoped tokens. */
import test, { type ExecutionContext } from "ava";
import { createAgentClient, type CarbonmonClientError } from "../../../../client/index.js";
import { startAgent } from "../../../../server/agent/main.js";
import { loadAgentConfig } from "../../../../server/shared/config.js";
import { silentLogger } from "../../../../server/shared/log.js";
import { tempDataDir } from "../../../helpers/grpc.js";
import { writeTokens } from "../../../helpers/security.js";

const PRINCIPALS = { alice: ["windows:write"], bob: ["windows:write", "windows:read"], admin: ["windows:admin"] };

async function start(t: ExecutionContext, dir: string, file: string, env: Record<string, string> = {}) {
  const config = loadAgentConfig({
    env: {
      CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
      CARBONMON_DATA_DIR: dir,
      CARBONMON_NVML_LIBRARY: "/nonexistent/libnvidia-ml.so.1",
      CARBONMON_POWERCAP_ROOT: `${dir}/no-powercap`,
      CARBONMON_SIMULATED_GPU: "true",
      CARBONMON_AUTH_TOKENS_FILE: file,
      ...env,
    },
  });
  const agent = await startAgent(config, silentLogger());
  let stopped = false;
  const stop = async () => {
    if (!stopped) await agent.running.shutdown(1000);
    stopped = true;
  };
  t.teardown(stop);
  return { agent, stop };
}

function clients(t: ExecutionContext, address: string, token: Record<string, string>) {
  const make = (name: string) => createAgentClient(address, { retries: 0, security: { token: token[name]! } });
  const c = { alice: make("alice"), bob: make("bob"), admin: make("admin") };
  t.teardown(() => Object.values(c).forEach((x) => x.close()));
  return c;
}

const codeOf = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => "OK",
    (e: CarbonmonClientError) => e.codeName,
  );

test("another principal cannot read, end or cancel a window: PERMISSION_DENIED, the window untouched; admin can; ownership survives a restart", async (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const { file, token } = writeTokens(data.dir, PRINCIPALS);
  const first = await start(t, data.dir, file);
  let c = clients(t, first.agent.running.address, token);
  await c.alice.beginWindow("alice/job-1");
  await c.bob.beginWindow("bob/job-1");

  for (const attempt of [c.bob.endWindow("alice/job-1"), c.bob.cancelWindow("alice/job-1"), c.bob.getWindow("alice/job-1")]) {
    const err = (await attempt.catch((e: unknown) => e)) as CarbonmonClientError;
    t.is(err.codeName, "PERMISSION_DENIED");
    t.regex(err.details, /windows:admin/);
  }
  t.deepEqual(
    (await c.alice.listWindows()).map((w) => w.key),
    ["alice/job-1"],
    "untouched, and ListWindows shows one's own",
  );
  t.deepEqual(
    (await c.bob.listWindows()).map((w) => w.key),
    ["bob/job-1"],
  );
  t.deepEqual((await c.admin.listWindows()).map((w) => w.key).sort(), ["alice/job-1", "bob/job-1"], "admin sees all");

  // Across a restart: the owner is stored with the window.
  await first.stop();
  const second = await start(t, data.dir, file);
  c = clients(t, second.agent.running.address, token);
  t.is(await codeOf(c.bob.endWindow("alice/job-1")), "PERMISSION_DENIED");
  t.is(await codeOf(c.alice.getWindow("alice/job-1")), "OK");
  t.is(await codeOf(c.alice.endWindow("alice/job-1")), "OK");
  // Ended windows stay the owner's: bob can neither read the result nor see it listed.
  t.is(await codeOf(c.bob.getWindow("alice/job-1")), "PERMISSION_DENIED");
  t.is(await codeOf(c.bob.endWindow("alice/job-1")), "PERMISSION_DENIED");
  t.false((await c.bob.listWindows({ includeEnded: true })).some((w) => w.key === "alice/job-1"));
  t.true((await c.alice.listWindows({ includeEnded: true })).some((w) => w.key === "alice/job-1"));
  t.is(await codeOf(c.admin.cancelWindow("bob/job-1")), "OK", "windows:admin may cancel anyone's");
});

test("per-principal limits: open windows and WatchPower streams; one tenant at its limit leaves the others served", async (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const { file, token } = writeTokens(data.dir, PRINCIPALS);
  const { agent } = await start(t, data.dir, file, {
    CARBONMON_MAX_OPEN_WINDOWS_PER_PRINCIPAL: "2",
    CARBONMON_MAX_STREAMS_PER_PRINCIPAL: "1",
  });
  const c = clients(t, agent.running.address, token);
  await c.alice.beginWindow("a1");
  await c.alice.beginWindow("a2");
  const err = (await c.alice.beginWindow("a3").catch((e: unknown) => e)) as CarbonmonClientError;
  t.is(err.codeName, "RESOURCE_EXHAUSTED");
  t.regex(err.details, /CARBONMON_MAX_OPEN_WINDOWS_PER_PRINCIPAL/);
  t.is(await codeOf(c.bob.beginWindow("b1")), "OK", "bob is not affected");
  await c.alice.cancelWindow("a1");
  t.is(await codeOf(c.alice.beginWindow("a3")), "OK", "a slot freed by cancelling");

  // Streams: bob holds one open; a second is refused; admin (another principal) still gets one.
  const first = c.bob.watchPower({ periodMs: 100 })[Symbol.asyncIterator]();
  t.truthy((await first.next()).value, "the first stream delivers");
  const second = c.bob.watchPower({ periodMs: 100 })[Symbol.asyncIterator]();
  const refused = (await second.next().catch((e: unknown) => e)) as CarbonmonClientError;
  t.is(refused.codeName, "RESOURCE_EXHAUSTED");
  t.regex(refused.details, /CARBONMON_MAX_STREAMS_PER_PRINCIPAL/);
  const other = c.admin.watchPower({ periodMs: 100 })[Symbol.asyncIterator]();
  t.truthy((await other.next()).value);
  await first.return?.(undefined);
  await other.return?.(undefined);
});
