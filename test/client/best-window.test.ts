/** createIntensityClient().bestWindow against the real intensity service with constants (DE = 300, GB = 180 g/kWh). */
import test from "ava";
import { CarbonmonClientError, createIntensityClient } from "../../client/index.js";
import { startTestIntensity } from "../helpers/grpc.js";

const HOUR = 3_600_000;

async function setup(t: import("ava").ExecutionContext) {
  const service = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300,GB=180" });
  const client = createIntensityClient(service.running.address, { deadlineMs: 5000 });
  t.teardown(async () => (client.close(), await service.close()));
  return client;
}

test("bestWindow ranks locations, gives grams for the energy and the run-now figures", async (t) => {
  const client = await setup(t);
  const before = Date.now();
  const r = await client.bestWindow(["DE", "GB"], { durationMs: 2 * HOUR, energyJ: 3.6e6, maxCandidates: 2 });
  t.deepEqual(
    r.candidates.map((c) => [c.zone, c.meanGPerKwh, c.carbonG, c.isForecast]),
    [
      ["GB", 180, 180, false],
      ["GB", 180, 180, false],
    ],
  );
  const [first, second] = r.candidates;
  t.is(second!.start!.getTime(), first!.end!.getTime(), "the next window of the same place follows the first");
  t.true(first!.start!.getTime() >= before - 1000 && first!.start!.getTime() <= Date.now());
  t.deepEqual(
    r.runNow.map((c) => [c.zone, c.meanGPerKwh, c.carbonG]),
    [
      ["DE", 300, 300],
      ["GB", 180, 180],
    ],
  );
  t.is(r.notes.length, 2);
});

test("bestWindow errors: OUT_OF_RANGE past the horizon, FAILED_PRECONDITION with a hint for a zone no provider has", async (t) => {
  const client = await setup(t);
  const far = await t.throwsAsync(client.bestWindow(["DE"], { durationMs: HOUR, earliestStart: new Date(Date.now() + 100 * HOUR) }), {
    instanceOf: CarbonmonClientError,
  });
  t.is(far!.codeName, "OUT_OF_RANGE");
  t.regex(far!.details, /72 h/);
  const none = await t.throwsAsync(client.bestWindow(["DE", "FR"], { durationMs: HOUR }), { instanceOf: CarbonmonClientError });
  t.is(none!.codeName, "FAILED_PRECONDITION");
  t.regex(none!.details, /zone FR/);
  t.regex(none!.hint ?? "", /CARBONMON_INTENSITY_CONSTANTS/);
});
