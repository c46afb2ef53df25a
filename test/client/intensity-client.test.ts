/** createIntensityClient against the real intensity service with the static provider (DE = 300 g/kWh). */
import test from "ava";
import { CarbonmonClientError, createIntensityClient } from "../../client/index.js";
import { toLocation } from "../../client/intensity-client.js";
import { startTestIntensity } from "../helpers/grpc.js";

async function setup(t: import("ava").ExecutionContext) {
  const service = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300" });
  const client = createIntensityClient(service.running.address, { deadlineMs: 5000 });
  t.teardown(async () => (client.close(), await service.close()));
  return client;
}

test("current('DE') is the configured 300 g/kWh; 3.6e6 J over an hour is 300 g", async (t) => {
  const client = await setup(t);
  const point = await client.current("DE");
  t.is(point.gPerKwh, 300);
  t.is(point.zone, "DE");
  t.is(point.provider, "static");
  const end = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000);
  const start = new Date(end.getTime() - 3_600_000);
  const emissions = await client.computeEmissions("DE", [{ start, end, energyJ: 3.6e6, device: "gpu:0" }]);
  t.true(Math.abs(emissions.totalCarbonG - 300) < 1e-9, `${emissions.totalCarbonG} g`);
  t.true(Math.abs(emissions.carbonG["gpu:0"]! - 300) < 1e-9);
  t.is(emissions.totalEnergyJ, 3.6e6);
  const providers = await client.listProviders();
  t.true(providers.some((p) => p.name === "static"));
  t.is((await client.resolveLocation("DE")).zone, "DE");
});

test("errors are CarbonmonClientError; locations accept a zone, coordinates or 'auto'", async (t) => {
  const client = await setup(t);
  const err = await t.throwsAsync(client.current("FR"), { instanceOf: CarbonmonClientError });
  t.is(err!.codeName, "NOT_FOUND");
  t.true(err!.details.length > 0);
  t.deepEqual(toLocation("DE"), { zone: "DE" });
  t.deepEqual(toLocation({ lat: 42.28, lon: -83.74 }), { coordinates: { lat: 42.28, lon: -83.74 } });
  t.deepEqual(toLocation("auto"), { autoDetect: true });
  t.throws(() => toLocation({} as never), { instanceOf: CarbonmonClientError });
});
