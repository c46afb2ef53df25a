/**
 * The intensity service's /metrics over HTTP (real gRPC, a fake ElectricityMaps on 127.0.0.1), its health
 * when every provider fails with nothing cached, and the access log of RPCs and upstream requests.
 */
import { credentials } from "@grpc/grpc-js";
import test from "ava";
import { CarbonIntensityClient, type IntensityPoint, type IntensityRequest } from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { startIntensity } from "../../../server/intensity/main.js";
import { loadIntensityConfig } from "../../../server/shared/config.js";
import { FAKE_EM_TOKEN, hourlySeries, startFakeElectricityMaps } from "../../helpers/fake-electricitymaps.js";
import { call, startTestIntensity, tempDataDir, type TestIntensity } from "../../helpers/grpc.js";
import { find, healthOf, scrape, until, value } from "../../helpers/prom.js";
import { capturingLogger } from "../../helpers/security.js";

const HOUR_MS = 3_600_000;
const SERVICE = "carbonmon.intensity.v1.CarbonIntensity";
const req = (zone: string): IntensityRequest => ({ location: { zone }, emissionFactor: 0, provider: "" });
const current = (s: { client: CarbonIntensityClient }, r: IntensityRequest) =>
  call<IntensityRequest, IntensityPoint>(s.client, s.client.getCurrentIntensity, r);

async function setup(t: import("ava").ExecutionContext, env: Record<string, string> = {}) {
  const lastHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const em = await startFakeElectricityMaps({
    series: { DE: hourlySeries("DE", lastHour - 23 * HOUR_MS, 24, () => 321) },
    nowMs: () => Date.now(),
  });
  const service = await startTestIntensity({
    ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
    CARBONMON_INTENSITY_CONSTANTS: "IS=28",
    CARBONMON_INTENSITY_METRICS_LISTEN: "127.0.0.1:0",
    ...env,
  });
  t.teardown(async () => {
    await service.close();
    await em.close();
  });
  return { em, service };
}

test("GET /metrics: intensity per zone with its provider, provider calls and budget, cache lookups, gRPC", async (t) => {
  const { service } = await setup(t);
  t.truthy(service.metricsAddress);
  await current(service, req("DE"));
  await current(service, req("DE")); // cached
  await Promise.all([current(service, req("IS")), current(service, req("IS"))]); // one load, one joins it
  const m = await scrape(service.metricsAddress!);
  const types = {
    carbonmon_intensity_g_per_kwh: "gauge",
    carbonmon_provider_requests_total: "counter",
    carbonmon_provider_request_duration_seconds: "histogram",
    carbonmon_provider_circuit_open: "gauge",
    carbonmon_provider_budget_remaining: "gauge",
    carbonmon_intensity_cache_requests_total: "counter",
    grpc_server_handled_total: "counter",
    grpc_server_handling_seconds: "histogram",
    process_resident_memory_bytes: "gauge",
  };
  for (const [name, type] of Object.entries(types)) t.is(m.types.get(name), type, name);
  t.is(
    value(m, "carbonmon_intensity_g_per_kwh", { zone: "DE", provider: "electricitymaps", signal: "average", emission_factor: "lifecycle" }),
    321,
  );
  t.is(value(m, "carbonmon_intensity_g_per_kwh", { zone: "IS", provider: "static" }), 28);
  t.is(value(m, "carbonmon_provider_requests_total", { provider: "electricitymaps", outcome: "ok" }), 1);
  const emCalls = find(m, "carbonmon_provider_requests_total", { provider: "electricitymaps" }).reduce((a, x) => a + x.value, 0);
  t.is(emCalls, 2, "DE answered; IS asked first too (the chain's first provider), then answered by static");
  t.is(value(m, "carbonmon_provider_request_duration_seconds_count", { provider: "electricitymaps" }), emCalls);
  t.is(value(m, "carbonmon_provider_circuit_open", { provider: "electricitymaps" }), 0);
  const budget = value(m, "carbonmon_provider_budget_remaining", { provider: "electricitymaps" });
  t.true(budget >= 100 - emCalls && budget <= 100, `budget ${budget}: 100 a minute, ${emCalls} spent, refilling`);
  t.is(find(m, "carbonmon_provider_budget_remaining", { provider: "offline" }).length, 0, "no budget, no series");
  t.is(value(m, "carbonmon_intensity_cache_requests_total", { result: "hit" }), 1);
  t.is(value(m, "carbonmon_intensity_cache_requests_total", { result: "miss" }), 2);
  t.is(value(m, "carbonmon_intensity_cache_requests_total", { result: "coalesced" }), 1);
  t.is(value(m, "grpc_server_handled_total", { grpc_service: SERVICE, grpc_method: "GetCurrentIntensity", grpc_code: "OK" }), 4);
});

test("a provider's failures and open circuit are counted by outcome", async (t) => {
  const { service, em } = await setup(t, { CARBONMON_PROVIDERS: "electricitymaps,static" });
  em.setFault("/carbon-intensity/latest", { status: 500 });
  for (let i = 0; i < 6; i++) await t.throwsAsync(current(service, req("FR")));
  const m = await scrape(service.metricsAddress!);
  t.is(value(m, "carbonmon_provider_requests_total", { provider: "electricitymaps", outcome: "unavailable" }), 5);
  t.is(value(m, "carbonmon_provider_requests_total", { provider: "electricitymaps", outcome: "circuit_open" }), 1);
  t.is(value(m, "carbonmon_provider_circuit_open", { provider: "electricitymaps" }), 1);
});

test("health: NOT_SERVING when every provider of the chain fails and nothing is cached; SERVING again once one answers", async (t) => {
  const { service, em } = await setup(t, { CARBONMON_PROVIDERS: "electricitymaps" });
  const address = service.running.address;
  t.is(await healthOf(address, SERVICE), "SERVING");
  em.setFault("/carbon-intensity/latest", { status: 503 });
  await t.throwsAsync(current(service, req("DE")));
  await until(async () => (await healthOf(address, SERVICE)) === "NOT_SERVING", "NOT_SERVING");
  t.is(await healthOf(address, ""), "SERVING", "the process still answers");
  em.setFault("/carbon-intensity/latest", undefined);
  await current(service, req("DE"));
  await until(async () => (await healthOf(address, SERVICE)) === "SERVING", "SERVING again");
});

test("health: a failing chain with a cached answer still serves", async (t) => {
  const { service, em } = await setup(t, { CARBONMON_PROVIDERS: "electricitymaps" });
  await current(service, req("DE"));
  em.setFault("/carbon-intensity/history", { status: 503 });
  const history = (s: TestIntensity) => call(s.client, s.client.getRecentIntensity, req("DE"));
  await history(service).catch(() => undefined); // answered from the store, or not: either way the provider failed
  t.is(service.intensity.guard("electricitymaps")!.health(), "degraded");
  t.is(await healthOf(service.running.address, SERVICE), "SERVING");
});

test("access log at debug: one line per RPC and per upstream request, without secrets", async (t) => {
  const lastHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const em = await startFakeElectricityMaps({
    series: { DE: hourlySeries("DE", lastHour - 23 * HOUR_MS, 24, () => 321) },
    nowMs: () => Date.now(),
  });
  const data = tempDataDir();
  const { log, lines } = capturingLogger("debug");
  const config = loadIntensityConfig({
    env: {
      CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
      CARBONMON_INTENSITY_METRICS_LISTEN: "",
      CARBONMON_DATA_DIR: data.dir,
      ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
      CARBONMON_ELECTRICITYMAPS_URL: em.url,
      CARBONMON_PROVIDERS: "electricitymaps",
    },
  });
  const server = await startIntensity(config, log);
  const client = new CarbonIntensityClient(server.running.address, credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await server.running.shutdown(1000);
    await em.close();
    data.cleanup();
  });
  await current({ client }, req("DE"));
  await t.throwsAsync(current({ client }, req("not a zone")));
  const rpcs = lines.filter((l) => l.msg === "rpc");
  t.deepEqual(
    rpcs.map((l) => [l.rpc, l.code]),
    [
      [`${SERVICE}/GetCurrentIntensity`, "OK"],
      [`${SERVICE}/GetCurrentIntensity`, "INVALID_ARGUMENT"],
    ],
  );
  t.true(rpcs.every((l) => typeof l.ms === "number"));
  const upstream = lines.filter((l) => l.msg === "upstream request");
  t.is(upstream.length, 1);
  t.like(upstream[0], { provider: "electricitymaps", method: "GET", status: 200 });
  t.regex(String(upstream[0]!.path), /^\/v3\/carbon-intensity\/latest$/);
  t.false(JSON.stringify(lines).includes(FAKE_EM_TOKEN), "no token in the log");
});
