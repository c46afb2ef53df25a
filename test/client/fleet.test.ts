/** FleetMonitor across two real agents and one address where nothing listens. */
import test from "ava";
import { CarbonmonClientError, FleetMonitor } from "../../client/index.js";
import { downAddress } from "../helpers/down-address.js";
import { startTestIntensity } from "../helpers/grpc.js";
import { agentWithGpus, sleep } from "./helpers.js";

test("one window across two agents and an unreachable host: per-host results, totals, and the failure", async (t) => {
  const withRapl = await agentWithGpus(t, { rapl: true });
  const gpusOnly = await agentWithGpus(t);
  const unreachable = (await downAddress(t)).address;
  const hosts = [withRapl.running.address, gpusOnly.running.address, unreachable];
  const fleet = new FleetMonitor(hosts, { deadlineMs: 2000, retries: 1, cudaVisibleDevices: null });
  t.teardown(() => fleet.close());
  t.deepEqual(fleet.hosts, hosts);

  const begun = await fleet.begin("job-42/step-1", { labels: { job: "42" } });
  t.deepEqual(Object.keys(begun.begun).sort(), hosts.slice(0, 2).sort());
  t.deepEqual(
    begun.failed.map((f) => [f.host, f.phase, f.error.codeName]),
    [[unreachable, "begin", "UNAVAILABLE"]],
  );
  await sleep(400);
  const result = await fleet.end("job-42/step-1", { waitForCounterUpdate: true });

  t.deepEqual(Object.keys(result.perHost).sort(), hosts.slice(0, 2).sort());
  t.is(result.failed.length, 1);
  t.is(result.failed[0]!.host, unreachable);
  t.true(result.failed[0]!.error instanceof CarbonmonClientError);
  t.is(result.failed[0]!.error.codeName, "UNAVAILABLE");
  t.regex(FleetMonitor.describeFailures(result), new RegExp(`^${unreachable.replace(/\./g, "\\.")} \\(begin\\): UNAVAILABLE`));

  const a = result.perHost[withRapl.running.address]!;
  const b = result.perHost[gpusOnly.running.address]!;
  t.deepEqual(Object.keys(a.cpu_energy ?? {}).sort(), ["0", "1"], "the RAPL host measures CPU packages");
  t.deepEqual(Object.keys(a.dram_energy ?? {}).sort(), ["0", "1"]);
  t.is(b.cpu_energy, undefined);
  t.is(b.dram_energy, undefined);
  const sum = (map: Record<number, number> | undefined) => Object.values(map ?? {}).reduce((x, y) => x + y, 0);
  const close = (x: number, y: number) => Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(y));
  t.true(close(result.total.gpu_energy_total_j, sum(a.gpu_energy) + sum(b.gpu_energy)));
  t.true(close(result.total.cpu_energy_total_j, sum(a.cpu_energy)));
  t.true(close(result.total.dram_energy_total_j, sum(a.dram_energy)));
  t.true(close(result.total.energy_total_j, a.measurement.totalEnergyJ + b.measurement.totalEnergyJ));
  t.is(result.total.time, Math.max(a.time, b.time));
  t.true(result.total.gpu_energy_total_j > 0, "the fake powercap tree is static, so only GPU energy must move");

  // Ending on a host that did not begin the window is a per-host failure, not a fleet failure.
  await fleet.clients[0]!.beginWindow("only-first");
  const partial = await fleet.end("only-first");
  t.deepEqual(Object.keys(partial.perHost), [withRapl.running.address]);
  t.deepEqual(
    partial.failed.map((f) => [f.host, f.phase, f.error.codeName]).sort(),
    [
      [gpusOnly.running.address, "end", "NOT_FOUND"],
      [unreachable, "end", "UNAVAILABLE"],
    ].sort(),
  );
});

test("fleet carbon: grams summed over the hosts that priced the window; the others are named", async (t) => {
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "FR=55" });
  t.teardown(() => intensity.close());
  const priced = await agentWithGpus(t, { env: { CARBONMON_INTENSITY_ADDR: intensity.running.address, CARBONMON_LOCATION: "FR" } });
  const energyOnly = await agentWithGpus(t);
  const fleet = new FleetMonitor([priced.running.address, energyOnly.running.address], { cudaVisibleDevices: null });
  t.teardown(() => fleet.close());
  await fleet.begin("job-7");
  await sleep(300);
  const result = await fleet.end("job-7", { waitForCounterUpdate: true });
  const p = result.perHost[priced.running.address]!;
  t.truthy(p.gpu_carbon_emission, "the priced host has grams per GPU");
  t.true(Math.abs(p.gpu_carbon_emission![0]! - (p.gpu_energy[0]! / 3.6e6) * 55) <= 1e-9 * p.gpu_carbon_emission![0]!);
  t.is(result.perHost[energyOnly.running.address]!.gpu_carbon_emission, undefined);
  t.true(Math.abs(result.total.carbon_total_g - p.measurement.totalCarbonG) < 1e-12);
  t.true(result.total.carbon_total_g > 0);
  t.false(result.total.carbon_provisional);
  t.deepEqual(result.total.carbon_missing_hosts, [energyOnly.running.address]);
});
