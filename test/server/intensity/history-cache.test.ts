/**
 * What the history cache keeps: an answer with gaps (upstream refused, the store still empty) is not kept,
 * so the same question asked again once upstream answers gets the values. Kept, it would answer "no
 * intensity" for an hour (and, shared through the store, on every replica).
 */
import test from "ava";
import type { HistoryRequest, IntensitySeries } from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { FAKE_EM_TOKEN, recordedHistory, startFakeElectricityMaps } from "../../helpers/fake-electricitymaps.js";
import { call, startTestIntensity } from "../../helpers/grpc.js";

const HOUR_MS = 3_600_000;

test("a history answer with gaps is not cached: asked again once upstream answers, it has the values", async (t) => {
  const lastHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const em = await startFakeElectricityMaps({ series: { "US-MIDW-MISO": recordedHistory(lastHour) } });
  const service = await startTestIntensity({
    CARBONMON_PROVIDERS: "electricitymaps",
    ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
  });
  t.teardown(async () => {
    await service.close();
    await em.close();
  });
  const req: HistoryRequest = {
    location: { zone: "US-MIDW-MISO" },
    emissionFactor: 0,
    allowEstimated: true,
    provider: "",
    gapPolicy: 0,
    start: new Date(lastHour - 2 * HOUR_MS),
    end: new Date(lastHour),
  };
  em.setFault("/carbon-intensity/history", { status: 401, body: { error: "Invalid auth-token" }, times: 1 });
  const first = await call<HistoryRequest, IntensitySeries>(service.client, service.client.getIntensityHistory, req);
  t.is(first.points.length, 0);
  t.is(first.gaps.length, 1);
  const second = await call<HistoryRequest, IntensitySeries>(service.client, service.client.getIntensityHistory, req);
  t.is(second.points.length, 2, "upstream asked again");
  t.deepEqual(second.gaps, []);
  const third = await call<HistoryRequest, IntensitySeries>(service.client, service.client.getIntensityHistory, req);
  t.is(third.points.length, 2);
  t.is(em.requests.filter((r) => r.path === "/carbon-intensity/history").length, 2, "a complete answer is cached");
});
