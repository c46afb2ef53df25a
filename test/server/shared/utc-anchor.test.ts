/**
 * UTC follows steps of the system clock; durations never do. The wall clock is stepped by hand (a manual
 * offset on the real clocks), like chrony's makestep or a VM restored from a snapshot.
 */
import test from "ava";
import {
  CarbonStatus,
  type EndWindowRequest,
  type GetHostRequest,
  type GetHostResponse,
  type Measurement,
} from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import { UtcAnchor } from "../../../server/shared/utc-anchor.js";
import { startFakeUkGrid } from "../../helpers/fake-ukgrid.js";
import { call, startTestAgent, startTestIntensity, type TestAgent, beginWindow } from "../../helpers/grpc.js";

const HOUR_MS = 3_600_000;

function windows({ client }: TestAgent) {
  return {
    begin: (key: string) =>
      beginWindow(client, {
        key,
        skipCpus: true,
      }),
    end: (key: string) => call<EndWindowRequest, Measurement>(client, client.endWindow, { key, waitForCounterUpdate: false }),
  };
}

test("a step of the wall clock re-anchors UTC once, with the step; noise, preemption and small adjustments do not", (t) => {
  let wall = 1_000_000;
  let mono = 1_000_000;
  const steps: number[] = [];
  const utc = new UtcAnchor({ wallMs: () => wall, monotonicMs: () => mono, onStep: (s) => steps.push(s) });
  t.is(utc.toUtcMs(5_000), 5_000, "no step since start: the agent's clock is UTC");
  wall += 1; // Date.now()'s whole milliseconds against a fractional monotonic clock
  mono += 0.3;
  t.is(utc.toUtcMs(5_000), 5_000);
  // A thread preempted for 150 ms between the two reads of one pair: the confirming reads show no step.
  let preempted = true;
  const noisy = new UtcAnchor({
    wallMs: () => wall,
    monotonicMs: () => (preempted ? ((preempted = false), mono + 150) : mono),
    onStep: (s) => steps.push(s),
  });
  t.is(noisy.toUtcMs(5_000), 5_000);
  t.is(noisy.steps, 0);
  t.deepEqual(steps, []);
  wall += HOUR_MS; // makestep forward
  t.is(utc.toUtcMs(5_000), 5_000 + HOUR_MS + 0.7);
  t.is(utc.fromUtcMs(5_000 + HOUR_MS + 0.7), 5_000);
  wall += 50; // a small adjustment (NTP territory) moves no label
  t.is(utc.toUtcMs(5_000), 5_000 + HOUR_MS + 0.7);
  t.is(utc.steps, 1);
  wall -= 2 * HOUR_MS; // and back past where it started
  t.is(utc.toUtcMs(5_000), 5_000 - HOUR_MS + 50.7);
  t.deepEqual(steps, [HOUR_MS + 0.7, -2 * HOUR_MS + 50]);
});

test("an agent whose system clock steps: begin_time and end_time follow UTC, time_s never goes backwards", async (t) => {
  let stepMs = 0;
  const utc = new UtcAnchor({ wallMs: () => Date.now() + stepMs });
  const agent = await startTestAgent({ CARBONMON_SIMULATED_GPU: "true" }, undefined, { utc });
  t.teardown(() => agent.close());
  const { client } = agent;
  const { begin, end } = windows(agent);
  const host = () => call<GetHostRequest, GetHostResponse>(client, client.getHost, {});
  const near = (a: Date | undefined, b: number, what: string) =>
    t.true(Math.abs(a!.getTime() - b) < 1000, `${what}: ${a?.toISOString()} vs ${new Date(b).toISOString()}`);

  await begin("across-forward");
  stepMs = HOUR_MS; // the wall clock jumps an hour ahead during the window
  const forward = await end("across-forward");
  near(forward.endTime, Date.now() + HOUR_MS, "end_time follows the new UTC");
  t.true(forward.timeS >= 0 && forward.timeS < 60, `time_s ${forward.timeS} is the monotonic duration, not the step`);
  t.true(Math.abs((forward.endTime!.getTime() - forward.beginTime!.getTime()) / 1000 - forward.timeS) < 0.002, "end - begin is time_s");
  near((await host()).now, Date.now() + HOUR_MS, "GetHost's now");

  const after = await begin("after-forward");
  near(after.beginTime, Date.now() + HOUR_MS, "a window begun after the step");
  stepMs = -HOUR_MS; // then two hours back: UTC now precedes this window's begin as first reported
  const back = await end("after-forward");
  t.true(back.timeS >= 0, `time_s ${back.timeS} never goes backwards`);
  t.true(back.endTime!.getTime() >= back.beginTime!.getTime(), "end_time never precedes begin_time");
  near(back.endTime, Date.now() - HOUR_MS, "end_time follows the clock back");
  t.true(Math.abs((back.endTime!.getTime() - back.beginTime!.getTime()) / 1000 - back.timeS) < 0.002);
  t.is(utc.steps, 2);
});

test("after a step, a window is priced in the intensity period of its UTC, not of the agent's start-time anchor", async (t) => {
  const uk = await startFakeUkGrid();
  const intensity = await startTestIntensity({ CARBONMON_UKGRID_URL: uk.url, CARBONMON_PROVIDERS: "ukgrid,offline" });
  t.teardown(async () => (await intensity.close(), await uk.close()));
  // The host's clock was five hours fast when the agent started; chrony steps it back.
  let stepMs = 0;
  const utc = new UtcAnchor({ wallMs: () => Date.now() + stepMs });
  const agent = await startTestAgent(
    { CARBONMON_SIMULATED_GPU: "true", CARBONMON_INTENSITY_ADDR: intensity.running.address, CARBONMON_LOCATION: "GB" },
    undefined,
    { utc },
  );
  t.teardown(() => agent.close());
  const { begin, end } = windows(agent);
  stepMs = -5 * HOUR_MS;
  await begin("priced");
  const m = await end("priced");
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_FINAL, m.carbonStatusReason);
  t.true(m.carbonPeriods.length >= 1);
  const endMs = m.endTime!.getTime();
  t.true(Math.abs(endMs - (Date.now() - 5 * HOUR_MS)) < 60_000, "end_time is the stepped UTC");
  const last = m.carbonPeriods[m.carbonPeriods.length - 1]!.intensity!;
  t.true(
    last.validFrom!.getTime() <= endMs && endMs <= last.validTo!.getTime(),
    `period ${last.validFrom!.toISOString()}-${last.validTo!.toISOString()} holds end_time ${m.endTime!.toISOString()}`,
  );
});
