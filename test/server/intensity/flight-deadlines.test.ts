/**
 * Single flight and deadlines: every caller waiting on one load is bounded by its own deadline and
 * cancellation only, and the load's upstream request is cancelled only once every caller has gone.
 * Real gRPC on loopback against a slow imitation ElectricityMaps /latest (real HTTP on 127.0.0.1) that
 * holds each request until the test releases it and says when its socket closed. No fixed sleeps: each
 * step waits on a condition.
 */
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import test, { type ExecutionContext } from "ava";
import { CarbonIntensityClient, type IntensityPoint, type IntensityRequest } from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { TtlCache } from "../../../server/intensity/cache.js";
import { startIntensity } from "../../../server/intensity/main.js";
import { SharedFlight } from "../../../server/intensity/shared-flight.js";
import { SqliteStore } from "../../../server/intensity/store/sqlite.js";
import { ManualClock } from "../../../server/shared/clock.js";
import { loadIntensityConfig } from "../../../server/shared/config.js";
import { AppError, Code } from "../../../server/shared/errors.js";
import { silentLogger } from "../../../server/shared/log.js";
import { withUpstream } from "../../../server/shared/net/upstream-context.js";
import { FAKE_EM_TOKEN } from "../../helpers/fake-electricitymaps.js";
import { tempDataDir } from "../../helpers/grpc.js";

const HOUR_MS = 3_600_000;

const until = async (cond: () => boolean): Promise<void> => {
  while (!cond()) await new Promise((r) => setImmediate(r));
};

/** /carbon-intensity/latest that holds every request until release(), counting requests and closed sockets. */
async function heldUpstream(t: ExecutionContext) {
  const held: ServerResponse[] = [];
  const state = { requests: 0, closed: 0 };
  const server = createServer((req, res) => {
    state.requests++;
    req.socket.once("close", () => state.closed++);
    held.push(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const hour = new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS).toISOString();
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v3`,
    state,
    release(gPerKwh: number): void {
      for (const res of held.splice(0)) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          `{"zone":"DE","carbonIntensity":${gPerKwh},"datetime":"${hour}","updatedAt":"${hour}","emissionFactorType":"lifecycle","isEstimated":false,"estimationMethod":null}`,
        );
      }
    },
  };
}

async function service(t: ExecutionContext, upstreamUrl: string) {
  const data = tempDataDir();
  const config = loadIntensityConfig({
    env: {
      CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
      CARBONMON_DATA_DIR: data.dir,
      ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
      CARBONMON_ELECTRICITYMAPS_URL: upstreamUrl,
      // No fallback: a caller cut short by its deadline gets the deadline, not an offline answer.
      CARBONMON_PROVIDERS: "electricitymaps",
      CARBONMON_INTENSITY_METRICS_LISTEN: "",
    },
  });
  const server = await startIntensity(config, silentLogger());
  const client = new CarbonIntensityClient(server.running.address, credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await server.running.shutdown(1000);
    data.cleanup();
  });
  // Connect the channel first, so that a short deadline is spent waiting on the upstream only.
  await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));
  return { client, cache: server.cache };
}

const DE: IntensityRequest = { location: { zone: "DE" }, emissionFactor: 0, provider: "" };

function currentWithin(client: CarbonIntensityClient, ms: number) {
  let cancel = () => {};
  const promise = new Promise<IntensityPoint>((resolve, reject) => {
    const c = client.getCurrentIntensity(DE, new Metadata(), { deadline: new Date(Date.now() + ms) }, (err, res) =>
      err ? reject(err) : resolve(res!),
    );
    cancel = () => c.cancel();
  });
  promise.catch(() => undefined);
  return { promise, cancel };
}

test("a joined caller with a long deadline gets the answer when the caller that started the load leaves at its short deadline", async (t) => {
  const up = await heldUpstream(t);
  const s = await service(t, up.url);
  const a = currentWithin(s.client, 2000);
  await until(() => up.state.requests === 1);
  const b = currentWithin(s.client, 60_000);
  await until(() => s.cache.lookups.coalesced === 1);
  const errA = (await t.throwsAsync(a.promise)) as unknown as ServiceError;
  t.is(errA.code, status.DEADLINE_EXCEEDED);
  // A's leaving cancelled nothing: B still waits on the same upstream request.
  t.is(up.state.closed, 0);
  up.release(321);
  const pointB = await b.promise;
  t.is(pointB.gPerKwh, 321);
  t.is(pointB.provider, "electricitymaps");
  t.is(up.state.requests, 1, "one upstream request for both callers");
});

test("when every caller waiting on a load has cancelled, its upstream request is aborted", async (t) => {
  t.timeout(8000, "the upstream socket should close once both callers cancel, long before the 10 s request timeout");
  const up = await heldUpstream(t);
  const s = await service(t, up.url);
  const a = currentWithin(s.client, 60_000);
  await until(() => up.state.requests === 1);
  const b = currentWithin(s.client, 60_000);
  await until(() => s.cache.lookups.coalesced === 1);
  a.cancel();
  t.is(((await t.throwsAsync(a.promise)) as unknown as ServiceError).code, status.CANCELLED);
  b.cancel();
  t.is(((await t.throwsAsync(b.promise)) as unknown as ServiceError).code, status.CANCELLED);
  await until(() => up.state.closed === 1);
  t.is(up.state.requests, 1);
  // The next caller starts a load of its own rather than joining the cancelled one.
  const c = currentWithin(s.client, 60_000);
  await until(() => up.state.requests === 2);
  up.release(123);
  t.is((await c.promise).gPerKwh, 123);
});

/** A load that resolves when told, and sees its own upstream context's signal. */
function gate<T>(value: T) {
  let calls = 0;
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { load: async () => (calls++, await opened, value), open: () => open(), calls: () => calls };
}

test("across replicas: a caller waiting on another replica's lease leaves at its own cancellation; the leader's load goes on", async (t) => {
  const data = tempDataDir();
  const clock = new ManualClock();
  const stores = [new SqliteStore(data.dir), new SqliteStore(data.dir)];
  t.teardown(async () => {
    await Promise.all(stores.map((st) => st.close()));
    data.cleanup();
  });
  const [leader, waiter] = stores.map((st) => new TtlCache(clock, 100, new SharedFlight(st, clock, silentLogger())));
  const g = gate({ gPerKwh: 321 });
  const led = leader!.get("k", g.load, () => 60_000);
  await until(() => g.calls() === 1);
  const controller = new AbortController();
  const waiting = withUpstream({ signal: controller.signal }, () => waiter!.get("k", g.load, () => 60_000));
  controller.abort(new AppError(Code.DeadlineExceeded, "stopped at the caller's deadline"));
  const err = await t.throwsAsync(waiting);
  t.is(AppError.from(err).code, Code.DeadlineExceeded);
  g.open();
  t.is((await led).value.gPerKwh, 321);
  t.is(g.calls(), 1, "the waiting replica never asked upstream itself");
});
