/**
 * Three intensity replicas on one PostgreSQL act as one service: concurrent cold requests spread over them
 * make one upstream call, the providers' budgets are global, and a replica killed mid-request loses
 * nothing (the client retries on another replica; the dead replica's lease lapses and another asks).
 * Upstream is the imitation ElectricityMaps (test/helpers/fake-electricitymaps.ts), counting requests.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { credentials } from "@grpc/grpc-js";
import test from "ava";
import {
  CarbonIntensityClient,
  type HistoryRequest,
  type IntensityPoint,
  type IntensityRequest,
  type IntensitySeries,
  type ListProvidersRequest,
  type ListProvidersResponse,
} from "../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { ManualClock } from "../../server/shared/clock.js";
import { start, until } from "../bin/cli-process.js";
import { FAKE_EM_TOKEN, recordedHistory, startFakeElectricityMaps, type FakeElectricityMaps } from "../helpers/fake-electricitymaps.js";
import { call, startTestIntensity, tempDataDir, type TestIntensity } from "../helpers/grpc.js";
import { startPostgres, type TestPostgres } from "../helpers/postgres.js";

const HOUR_MS = 3_600_000;
const ZONE = "US-MIDW-MISO";
const req: IntensityRequest = { location: { zone: ZONE }, emissionFactor: 0, provider: "", allowEstimated: true };
const latest = (em: FakeElectricityMaps) => em.requests.filter((r) => r.path === "/carbon-intensity/latest").length;

let cluster: TestPostgres;
let databases = 0;
test.before(async () => {
  cluster = await startPostgres();
});
test.after.always(async () => {
  await cluster?.stop();
});

async function upstream(t: import("ava").ExecutionContext) {
  const lastHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const em = await startFakeElectricityMaps({ series: { [ZONE]: recordedHistory(lastHour) } });
  t.teardown(() => em.close());
  return { em, lastHour };
}

const envFor = (em: FakeElectricityMaps, databaseUrl: string) => ({
  CARBONMON_DATABASE_URL: databaseUrl,
  CARBONMON_PROVIDERS: "electricitymaps",
  ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
  CARBONMON_ELECTRICITYMAPS_URL: em.url,
});

/** Three in-process replicas, each with its own cache and connection pool, on one fresh database. */
async function inProcessReplicas(
  t: import("ava").ExecutionContext,
  em: FakeElectricityMaps,
  options: Parameters<typeof startTestIntensity>[1] = {},
) {
  const url = await cluster.createDatabase(`replicas_${++databases}`);
  const replicas: TestIntensity[] = [];
  for (let i = 0; i < 3; i++) replicas.push(await startTestIntensity(envFor(em, url), options));
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  return replicas;
}

test("3 replicas x 1,000 concurrent cold requests: exactly one upstream call, one answer for all", async (t) => {
  const { em } = await upstream(t);
  const replicas = await inProcessReplicas(t, em);
  const calls = replicas.flatMap((r) =>
    Array.from({ length: 1000 }, () => call<IntensityRequest, IntensityPoint>(r.client, r.client.getCurrentIntensity, req)),
  );
  const answers = await Promise.all(calls);
  t.is(latest(em), 1, "one upstream call for 3,000 requests on three replicas");
  t.is(answers.length, 3000);
  t.true(answers.every((a) => a.gPerKwh === answers[0]!.gPerKwh && a.provider === "electricitymaps"));
  t.is(
    replicas.reduce((n, r) => n + r.cache.loads, 0),
    1,
    "only one replica asked upstream",
  );
  // Later requests: cache hits everywhere, still one upstream call.
  for (const r of replicas) t.true((await call<IntensityRequest, IntensityPoint>(r.client, r.client.getCurrentIntensity, req)).cached);
  t.is(latest(em), 1);
});

test("a provider's request budget is global: 30 distinct questions over 3 replicas, a budget of 5, 5 upstream calls", async (t) => {
  const { em, lastHour } = await upstream(t);
  const clock = new ManualClock(lastHour + HOUR_MS / 2); // no refill during the test
  const replicas = await inProcessReplicas(t, em, { clock, budgets: { electricitymaps: { capacity: 5, windowMs: HOUR_MS } } });
  const results = await Promise.allSettled(
    Array.from({ length: 30 }, (_, i) => {
      const r = replicas[i % 3]!;
      const range: HistoryRequest = { ...req, start: new Date(lastHour - (i + 1) * HOUR_MS), end: new Date(lastHour), gapPolicy: 0 };
      return call<HistoryRequest, IntensitySeries>(r.client, r.client.getIntensityHistory, range);
    }),
  );
  t.is(em.requests.length, 5, "upstream saw exactly the budget");
  // History is still answered past the budget, from the store, saying why upstream was not asked.
  const attempts = results.map((r) => (r.status === "fulfilled" ? r.value.attempts[0]! : t.fail(String(r.reason))));
  t.is(attempts.filter((a) => a?.code === "OK").length, 5);
  const refused = attempts.filter((a) => a?.code === "RESOURCE_EXHAUSTED");
  t.is(refused.length, 25);
  for (const a of refused) t.regex(a!.message, /budget \(5 per 3600 s\) is spent/);
  for (const r of replicas) {
    const list = await call<ListProvidersRequest, ListProvidersResponse>(r.client, r.client.listProviders, {});
    t.like(
      list.providers[0],
      { name: "electricitymaps", budgetRemaining: 0, budgetCapacity: 5 },
      "every replica reports the shared bucket",
    );
  }
});

/** A replica as its own process (`carbonmon intensity`), so that it can be killed like a crashed pod. */
async function processReplica(t: import("ava").ExecutionContext, env: Record<string, string>) {
  const data = tempDataDir();
  const child = start(["intensity"], {
    ...env,
    CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
    CARBONMON_DATA_DIR: data.dir,
    CARBONMON_LOG_LEVEL: "info",
  });
  t.teardown(() => {
    child.kill("SIGKILL");
    data.cleanup();
  });
  const out = await until(child, (f) => /"msg":"listening"/.test(f.stderr), 60_000);
  const line = out.stderr.split("\n").find((l) => l.includes('"msg":"listening"'))!;
  const address = (JSON.parse(line) as { address: string }).address;
  const client = new CarbonIntensityClient(address, credentials.createInsecure());
  t.teardown(() => client.close());
  return { child, client, address };
}

test("a replica killed mid-request loses nothing: clients retry on the others, whose wait ends when the dead leader's lease lapses", async (t) => {
  const { em } = await upstream(t);
  const url = await cluster.createDatabase(`kill_${++databases}`);
  const env = envFor(em, url);
  const replicas = await Promise.all([processReplica(t, env), processReplica(t, env), processReplica(t, env)]);
  // The first upstream call hangs: the replica that makes it is killed while it holds the lease.
  em.setFault("/carbon-intensity/latest", { delayMs: 120_000, times: 1 });
  /**
   * What an agent's pricing does: ask a replica; when the call breaks, the next one. A server killed
   * mid-call shows as UNAVAILABLE, or as INTERNAL when its stream was reset in flight.
   */
  const broken = new Set<number>([status.UNAVAILABLE, status.INTERNAL]);
  const priced = async (first: number): Promise<{ point: IntensityPoint; retried: boolean }> => {
    for (let i = 0; ; i++) {
      const r = replicas[(first + i) % replicas.length]!;
      try {
        return { point: await call<IntensityRequest, IntensityPoint>(r.client, r.client.getCurrentIntensity, req), retried: i > 0 };
      } catch (err) {
        if (!broken.has((err as ServiceError).code) || i >= 5) throw err;
      }
    }
  };
  const leaderCall = priced(0);
  while (latest(em) === 0) await new Promise((r) => setTimeout(r, 10));
  // 300 more requests spread over all three, then the leader dies mid-request.
  const others = Array.from({ length: 300 }, (_, i) => priced(i % 3));
  replicas[0]!.child.kill("SIGKILL");
  const answers = await Promise.all([leaderCall, ...others]);
  t.is(answers.length, 301, "every request answered");
  t.true(answers[0]!.retried, "the request on the killed replica was retried elsewhere");
  t.true(answers.every((a) => a.point.gPerKwh === answers[0]!.point.gPerKwh));
  t.is(latest(em), 2, "the lost upstream call, then one more by a surviving replica");
});
