/**
 * Carbon per window, end to end: the agent (fake NVML with a scripted profile, fake powercap) prices its
 * windows through the real intensity service, which asks an imitation provider serving a known history.
 * Hours pass in seconds (TimeTravel): the agent's clock and the fake NVML's move together.
 *
 * The profile is 0 W within 20 s of every period boundary and a different level in the middle of each
 * period. Edges and boundary crossings happen inside those quiet margins, so the exact energy of every
 * period follows from the profile alone, whatever the clocks' sub-millisecond offsets and the wire's
 * millisecond timestamps; the expected grams (energy per period × that period's intensity, summed) are
 * computed here from the profile and the history, and must match within 1e-9.
 *
 * Most intensity services here run on today's clock, so the agent's 2024 hours are over and FINAL; the
 * test of a live current hour shares the agent's clock with its service.
 */
import { createServer as createHttpServer } from "node:http";
import { createServer, type Socket } from "node:net";
import test, { type ExecutionContext } from "ava";
import {
  CarbonStatus,
  type BeginWindowResponse,
  type EndWindowRequest,
  type GetWindowRequest,
  type Measurement,
} from "../../../../proto/gen/carbonmon/agent/v1/agent.js";
import { EmissionFactorType } from "../../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import {
  hourlySeries,
  seriesEvery,
  startFakeElectricityMaps,
  type EmPoint,
  type FakeElectricityMaps,
} from "../../../helpers/fake-electricitymaps.js";
import { downAddress } from "../../../helpers/down-address.js";
import { fakeNvml, profileEnergyJ, type Segment } from "../../../helpers/fake-nvml.js";
import { startFakeUkGrid } from "../../../helpers/fake-ukgrid.js";
import { FAKE_WT_PASSWORD, FAKE_WT_USERNAME, startFakeWattTime } from "../../../helpers/fake-watttime.js";
import {
  call,
  startTestAgent,
  startTestIntensity,
  tempDataDir,
  type TestAgent,
  type TestIntensity,
  beginWindow,
} from "../../../helpers/grpc.js";
import { intelTwoSocketTree, type PowercapTree } from "../../../helpers/powercap.js";
import { steppedProfile, TimeTravel } from "../../../helpers/time-travel.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const QUIET_MS = 20_000;
const DAY0 = Date.UTC(2024, 10, 30, 8); // the fake's epoch: a period boundary
const ZONE = "US-MIDW-MISO";
const G_PER_LB = 453.59237;

/** Distinct levels per period and per GPU. */
const levelsGpu0 = (k: number): number => 150 + 25 * (k % 11);
const levelsGpu1 = (k: number): number => 420 - 30 * (k % 7);
/** The hourly history the imitation ElectricityMaps serves: g/kWh of the hour starting at startMs. */
const emIntensity = (startMs: number): number => 310 + 17 * (((startMs - DAY0) / HOUR) % 13);

function emHistory(except: number[] = []): EmPoint[] {
  const hours = 60;
  const points = hourlySeries(ZONE, DAY0 - 2 * HOUR, hours, (i) => emIntensity(DAY0 - 2 * HOUR + i * HOUR));
  return points.filter((p) => !except.includes(Date.parse(p.datetime)));
}

interface Rig {
  tt: TimeTravel;
  agent: TestAgent;
  profiles: Segment[][];
  tree: PowercapTree | undefined;
  /** Every device id the sampler has. */
  ids: string[];
  /** Joules added to RAPL package 0 and its DRAM so far. */
  rapl: { package: number; dram: number };
  /** The agent's settings (to start it again on the same data directory). */
  env: Record<string, string>;
}

interface RigOptions {
  periodMs: number;
  /** Agent clock at start. */
  startMs: number;
  intensityAddr: string;
  /** CARBONMON_LOCATION; undefined: unset (the agent locates itself by IP). */
  location: string | undefined;
  rapl?: boolean;
  agentEnv?: Record<string, string>;
  dataDir?: string;
  /** A clock the test shares with the intensity service; default a new one at startMs. */
  tt?: TimeTravel;
}

async function startRig(t: ExecutionContext, o: RigOptions): Promise<Rig> {
  // The levels repeat every 77 periods (11 × 7), and so does the profile: the fake holds at most 256 segments.
  const profiles = [levelsGpu0, levelsGpu1].map((level) => steppedProfile(o.periodMs, QUIET_MS, 77, 0, level));
  const tt = o.tt ?? new TimeTravel(o.startMs - 30_000);
  const nvml = fakeNvml({ gpus: profiles.map((profile, i) => ({ profile, uuid: `GPU-c0${i}` })), epochMs: DAY0, fieldTimestamp: "update" });
  tt.attach(nvml.libraryPath);
  const tree = o.rapl ? intelTwoSocketTree() : undefined;
  const env: Record<string, string> = {
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_INTENSITY_ADDR: o.intensityAddr,
    ...(o.location !== undefined ? { CARBONMON_LOCATION: o.location } : {}),
    CARBONMON_CARBON_RETRY_MS: "100",
    // EndWindow waits this long for the grams (default 2 s): on a busy machine a lookup can take longer, and
    // these tests check the grams EndWindow returns. A service that is down still answers at once.
    CARBONMON_CARBON_TIMEOUT_MS: "30000",
    ...(tree ? { CARBONMON_POWERCAP_ROOT: tree.root } : {}),
    ...(o.dataDir ? { CARBONMON_DATA_DIR: o.dataDir } : {}),
    ...o.agentEnv,
  };
  const agent = await startTestAgent(env, tt.clock);
  const ids = agent.context.sampler.devices().map((d) => d.id);
  const rig: Rig = { tt, agent, profiles, tree, ids, rapl: { package: 0, dram: 0 }, env };
  t.teardown(async () => {
    await rig.agent.close();
    nvml.cleanup();
    tree?.cleanup();
  });
  await settle(rig);
  // The worker learns that the driver stamps update instants (it needs power: a held value at 0 W says
  // nothing), so the agent starts 30 s before startMs, then jumps there.
  await new Promise((r) => setTimeout(r, 500));
  tt.jumpTo(o.startMs);
  await settle(rig);
  return rig;
}

/** Until every device has a reading after now. */
async function settle(rig: Pick<Rig, "tt" | "agent" | "ids">): Promise<void> {
  await rig.agent.context.sampler.waitForReadingsAfter(rig.tt.now(), rig.ids, 5000);
}

/** Lives through boundary b inside its quiet margin: to 1 s before it, then to 1 s after it. */
async function cross(rig: Rig, b: number): Promise<void> {
  rig.tt.jumpTo(b - 1000);
  await settle(rig);
  rig.tt.jumpTo(b + 1000);
  await settle(rig);
}

/** Jumps into the middle of the current period; RAPL counters gain the given joules meanwhile. */
async function midPeriod(rig: Rig, periodMs: number, raplJ?: { package: number; dram: number }): Promise<void> {
  const start = Math.floor(rig.tt.now() / periodMs) * periodMs;
  rig.tt.jumpTo(start + periodMs / 2);
  if (raplJ && rig.tree) {
    rig.rapl.package += raplJ.package;
    rig.rapl.dram += raplJ.dram;
    // The tree's initial counters: package 0 at 1 J, its DRAM at 2 J.
    rig.tree.setEnergyUj("intel-rapl:0", Math.round((1 + rig.rapl.package) * 1e6));
    rig.tree.setEnergyUj("intel-rapl:0/intel-rapl:0:0", Math.round((2 + rig.rapl.dram) * 1e6));
  }
  await settle(rig);
}

/** Begins a window and lets a reading follow its edge before time jumps on (as it would, unhurried). */
async function begin(rig: Rig, key: string): Promise<BeginWindowResponse> {
  const res = await beginWindow(rig.agent.client, { key });
  await settle(rig);
  return res;
}
const end = (agent: TestAgent, key: string) =>
  call<EndWindowRequest, Measurement>(agent.client, agent.client.endWindow, { key, waitForCounterUpdate: true });
const get = (agent: TestAgent, key: string) => call<GetWindowRequest, Measurement>(agent.client, agent.client.getWindow, { key });

interface Expected {
  /** Grams per GPU index. */
  gpuG: number[];
  /** Per period overlapped: start, g/kWh, joules and grams summed over the GPUs. */
  periods: Array<{ startMs: number; gPerKwh: number; energyJ: number; carbonG: number }>;
}

/** The truth: each GPU's energy per period from its profile, times that period's intensity. */
function expected(rig: Rig, m: Measurement, periodMs: number, gPerKwh: (periodStartMs: number) => number): Expected {
  const b = m.beginTime!.getTime();
  const e = m.endTime!.getTime();
  const gpuG = rig.profiles.map(() => 0);
  const periods: Expected["periods"] = [];
  for (let start = Math.floor(b / periodMs) * periodMs; start < e; start += periodMs) {
    const from = Math.max(b, start);
    const to = Math.min(e, start + periodMs);
    const intensity = gPerKwh(start);
    let energyJ = 0;
    rig.profiles.forEach((profile, i) => {
      const joules = profileEnergyJ(profile, DAY0, from, to);
      gpuG[i]! += (joules / 3.6e6) * intensity;
      energyJ += joules;
    });
    periods.push({ startMs: start, gPerKwh: intensity, energyJ, carbonG: (energyJ / 3.6e6) * intensity });
  }
  return { gpuG, periods };
}

const close = (a: number, b: number, rel = 1e-9): boolean => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));

/** The GPU grams and every GPU-only period against the truth (CPU energy, when measured, adds to periods' totals). */
function assertGrams(t: ExecutionContext, m: Measurement, want: Expected, cpuJByPeriod: Record<number, number> = {}): void {
  if (want.gpuG.some((g, i) => !close(m.gpuCarbonG[i]!, g))) {
    t.log(
      "periods (got, expected J):",
      m.carbonPeriods.map((p, k) => [p.intensity?.validFrom?.toISOString(), p.energyJ, want.periods[k]?.energyJ]),
    );
    t.log(
      "energy",
      m.gpuEnergyJ,
      "begin",
      m.beginTime?.toISOString(),
      "end",
      m.endTime?.toISOString(),
      "approximations",
      m.approximations,
      "uncertainty",
      m.gpuEnergyUncertaintyJ,
    );
  }
  want.gpuG.forEach((g, i) => t.true(close(m.gpuCarbonG[i]!, g), `gpu ${i}: ${m.gpuCarbonG[i]} g, expected ${g} g`));
  t.is(m.carbonPeriods.length, want.periods.length, "one carbon period per intensity period spanned");
  want.periods.forEach((p, k) => {
    const got = m.carbonPeriods[k]!;
    t.is(got.intensity!.validFrom!.getTime(), p.startMs);
    t.is(got.intensity!.gPerKwh, p.gPerKwh);
    const energyJ = p.energyJ + (cpuJByPeriod[p.startMs] ?? 0);
    t.true(close(got.energyJ, energyJ), `period ${new Date(p.startMs).toISOString()}: ${got.energyJ} J, expected ${energyJ} J`);
    t.true(close(got.carbonG, (energyJ / 3.6e6) * p.gPerKwh), `period ${new Date(p.startMs).toISOString()}: ${got.carbonG} g`);
  });
  const total =
    Object.values(m.gpuCarbonG).reduce((a, b) => a + b, 0) +
    Object.values(m.cpuCarbonG).reduce((a, b) => a + b, 0) +
    Object.values(m.dramCarbonG).reduce((a, b) => a + b, 0);
  t.true(close(m.totalCarbonG, total), "total_carbon_g is the sum of the maps");
}

async function emService(
  t: ExecutionContext,
  env: Record<string, string> = {},
  series = emHistory(),
): Promise<{ em: FakeElectricityMaps; intensity: TestIntensity }> {
  const em = await startFakeElectricityMaps({ series: { [ZONE]: series } });
  const intensity = await startTestIntensity({
    ELECTRICITYMAPS_API_TOKEN: em.token,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
    CARBONMON_PROVIDERS: "electricitymaps,offline",
    ...env,
  });
  t.teardown(async () => {
    await intensity.close();
    await em.close();
  });
  return { em, intensity };
}

test("a window inside one hour: its energy times the hour's intensity; no RAPL: CPU maps empty", async (t) => {
  const { intensity } = await emService(t);
  const h = DAY0 + 3 * HOUR;
  const rig = await startRig(t, { periodMs: HOUR, startMs: h + 1000, intensityAddr: intensity.running.address, location: ZONE });
  await begin(rig, "inside");
  await midPeriod(rig, HOUR);
  rig.tt.jumpTo(h + HOUR - 15_000);
  await settle(rig);
  const m = await end(rig.agent, "inside");
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_FINAL, m.carbonStatusReason);
  const want = expected(rig, m, HOUR, emIntensity);
  t.true(want.periods[0]!.energyJ > 1e6, "the hour's energy is large enough for a 1e-9 comparison");
  assertGrams(t, m, want);
  t.deepEqual(m.cpuCarbonG, {});
  t.deepEqual(m.cpuEnergyJ, {});
  t.not(m.cpuUnavailableReason, "");
  t.is(m.carbonPeriods[0]!.intensity!.provider, "electricitymaps");
  // GetWindow returns the same stored figures.
  t.deepEqual((await get(rig.agent, "inside")).gpuCarbonG, m.gpuCarbonG);
});

test("overlapping windows across two and three hour boundaries, with CPU and DRAM from RAPL", async (t) => {
  const { intensity } = await emService(t);
  const h0 = DAY0 + 2 * HOUR;
  const rig = await startRig(t, {
    periodMs: HOUR,
    startMs: h0 + 1000,
    intensityAddr: intensity.running.address,
    location: ZONE,
    rapl: true,
  });
  const raplByHour: Record<number, { package: number; dram: number }> = {};
  const step = async (hourStart: number, j: { package: number; dram: number }) => {
    raplByHour[hourStart] = j;
    await midPeriod(rig, HOUR, j);
  };
  await begin(rig, "two-boundaries");
  await step(h0, { package: 41_000.25, dram: 9_000.5 });
  await cross(rig, h0 + HOUR);
  await begin(rig, "three-boundaries");
  await step(h0 + HOUR, { package: 52_500, dram: 7_250.75 });
  await cross(rig, h0 + 2 * HOUR);
  const a = await end(rig.agent, "two-boundaries");
  await step(h0 + 2 * HOUR, { package: 38_000, dram: 8_100 });
  await cross(rig, h0 + 3 * HOUR);
  await step(h0 + 3 * HOUR, { package: 45_000.5, dram: 6_000 });
  await cross(rig, h0 + 4 * HOUR);
  const b = await end(rig.agent, "three-boundaries");

  // Each window's periods, and the hours whose RAPL energy it saw (written mid-hour while it was open).
  const cases = [
    { m: a, raplHours: [h0, h0 + HOUR] },
    { m: b, raplHours: [h0 + HOUR, h0 + 2 * HOUR, h0 + 3 * HOUR] },
  ];
  for (const { m, raplHours } of cases) {
    t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_FINAL, m.carbonStatusReason);
    const cpuJ: Record<number, number> = {};
    let cpuG = 0;
    let dramG = 0;
    for (const hour of raplHours) {
      const j = raplByHour[hour]!;
      cpuJ[hour] = j.package + j.dram;
      cpuG += (j.package / 3.6e6) * emIntensity(hour);
      dramG += (j.dram / 3.6e6) * emIntensity(hour);
    }
    assertGrams(t, m, expected(rig, m, HOUR, emIntensity), cpuJ);
    t.true(close(m.cpuCarbonG[0]!, cpuG, 1e-9), `cpu 0: ${m.cpuCarbonG[0]} g, expected ${cpuG} g`);
    t.true(close(m.dramCarbonG[0]!, dramG, 1e-9), `dram 0: ${m.dramCarbonG[0]} g, expected ${dramG} g`);
    t.is(m.cpuCarbonG[1], 0, "package 1 used no energy");
  }
  t.is(a.carbonPeriods.length, 3);
  t.is(b.carbonPeriods.length, 4);
});

test("a window longer than 24 hours, split at every hour", async (t) => {
  const { intensity, em } = await emService(t);
  const h0 = DAY0 + 1 * HOUR;
  const rig = await startRig(t, { periodMs: HOUR, startMs: h0 + 1000, intensityAddr: intensity.running.address, location: ZONE });
  await begin(rig, "long");
  const hours = 27;
  for (let k = 1; k <= hours; k++) await cross(rig, h0 + k * HOUR);
  const m = await end(rig.agent, "long");
  t.true(m.timeS > 24 * 3600);
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_FINAL, m.carbonStatusReason);
  assertGrams(t, m, expected(rig, m, HOUR, emIntensity));
  t.is(m.carbonPeriods.length, hours + 1);
  t.true(
    em.requests.some((r) => r.path === "/carbon-intensity/past-range"),
    "the service asked past-range for what /history cannot answer",
  );
});

test("30-minute periods (UK grid): each half hour priced at its own actual intensity", async (t) => {
  const uk = await startFakeUkGrid();
  const intensity = await startTestIntensity({ CARBONMON_UKGRID_URL: uk.url, CARBONMON_PROVIDERS: "ukgrid,offline" });
  t.teardown(async () => (await intensity.close(), await uk.close()));
  const half = 30 * MINUTE;
  const p0 = DAY0 + 4 * HOUR;
  const rig = await startRig(t, { periodMs: half, startMs: p0 + 1000, intensityAddr: intensity.running.address, location: "GB" });
  await begin(rig, "half-hours");
  await cross(rig, p0 + half);
  await cross(rig, p0 + 2 * half);
  rig.tt.jumpTo(p0 + 3 * half - 15_000);
  await settle(rig);
  const m = await end(rig.agent, "half-hours");
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_FINAL, m.carbonStatusReason);
  // The imitation's series: forecast 200 + half hour of the day, actual 5 less once over.
  const actual = (startMs: number) => 200 + ((startMs / half) % 48) - 5;
  assertGrams(t, m, expected(rig, m, half, actual));
  t.is(m.carbonPeriods.length, 3);
  t.true(m.carbonPeriods.every((p) => p.intensity!.provider === "ukgrid"));
});

test("5-minute periods (WattTime, lbs/MWh): each five minutes priced at its own value", async (t) => {
  const lbs = (pointMs: number) => 700 + ((pointMs / (5 * MINUTE)) % 288);
  const wt = await startFakeWattTime({ value: (_region, pointMs) => lbs(pointMs) });
  const intensity = await startTestIntensity({
    WATTTIME_USERNAME: FAKE_WT_USERNAME,
    WATTTIME_PASSWORD: FAKE_WT_PASSWORD,
    CARBONMON_WATTTIME_URL: wt.url,
    CARBONMON_PROVIDERS: "watttime,offline",
  });
  t.teardown(async () => (await intensity.close(), await wt.close()));
  const five = 5 * MINUTE;
  const p0 = DAY0 + 5 * HOUR;
  const rig = await startRig(t, { periodMs: five, startMs: p0 + 1000, intensityAddr: intensity.running.address, location: "CAISO_NORTH" });
  await begin(rig, "five-minutes");
  for (let k = 1; k <= 3; k++) await cross(rig, p0 + k * five);
  const m = await end(rig.agent, "five-minutes");
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_FINAL, m.carbonStatusReason);
  assertGrams(
    t,
    m,
    expected(rig, m, five, (startMs) => (lbs(startMs) * G_PER_LB) / 1000),
  );
  t.is(m.carbonPeriods.length, 4);
  t.true(m.carbonPeriods.every((p) => p.intensity!.provider === "watttime"));
});

test("5-minute periods from ElectricityMaps (temporalGranularity=5_minutes): each priced at its own value", async (t) => {
  const five = 5 * MINUTE;
  const p0 = DAY0 + 8 * HOUR;
  const em5 = (startMs: number) => 250 + ((startMs / five) % 37);
  const series = seriesEvery(ZONE, DAY0, 24 * 12, five, (i) => em5(DAY0 + i * five));
  const { em, intensity } = await emService(t, { CARBONMON_ELECTRICITYMAPS_GRANULARITY: "5_minutes" }, series);
  const rig = await startRig(t, { periodMs: five, startMs: p0 + 1000, intensityAddr: intensity.running.address, location: ZONE });
  await begin(rig, "em-five-minutes");
  for (let k = 1; k <= 2; k++) await cross(rig, p0 + k * five);
  const m = await end(rig.agent, "em-five-minutes");
  assertGrams(t, m, expected(rig, m, five, em5));
  t.is(m.carbonPeriods.length, 3);
  t.true(m.carbonPeriods.every((p) => p.intensity!.validTo!.getTime() - p.intensity!.validFrom!.getTime() === five));
  t.true(em.requests.some((r) => r.query.temporalGranularity === "5_minutes"));
});

test("a missing hour is filled from the next provider, priced at its value and reported (PROVISIONAL)", async (t) => {
  const h0 = DAY0 + 6 * HOUR;
  const { intensity } = await emService(
    t,
    { CARBONMON_PROVIDERS: "electricitymaps,static", CARBONMON_INTENSITY_CONSTANTS: `${ZONE}=555` },
    emHistory([h0 + HOUR]),
  );
  const rig = await startRig(t, { periodMs: HOUR, startMs: h0 + 1000, intensityAddr: intensity.running.address, location: ZONE });
  await begin(rig, "gap");
  await cross(rig, h0 + HOUR);
  await cross(rig, h0 + 2 * HOUR);
  const m = await end(rig.agent, "gap");
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_PROVISIONAL);
  t.regex(m.carbonStatusReason, /filled from static/);
  t.regex(m.carbonStatusReason, new RegExp(new Date(h0 + HOUR).toISOString().slice(0, 13)));
  assertGrams(
    t,
    m,
    expected(rig, m, HOUR, (start) => (start === h0 + HOUR ? 555 : emIntensity(start))),
  );
  t.deepEqual(
    m.carbonPeriods.map((p) => p.intensity!.provider),
    ["electricitymaps", "static", "electricitymaps"],
  );
});

test("the service down at EndWindow: energy at once with PENDING, then the grams through GetWindow", async (t) => {
  const down = await downAddress(t);
  const h0 = DAY0 + 7 * HOUR;
  const rig = await startRig(t, { periodMs: HOUR, startMs: h0 + 1000, intensityAddr: down.address, location: ZONE });
  await begin(rig, "late");
  await cross(rig, h0 + HOUR);
  const m = await end(rig.agent, "late");
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_PENDING);
  t.regex(m.carbonStatusReason, /^not priced yet: the intensity service answered UNAVAILABLE/);
  t.true(m.gpuEnergyJ[0]! > 1e5, "the energy is there regardless");
  t.deepEqual(m.gpuCarbonG, {});
  t.is((await get(rig.agent, "late")).carbonStatus, CarbonStatus.CARBON_STATUS_PENDING);

  await down.release();
  await emService(t, { CARBONMON_INTENSITY_LISTEN: down.address });
  const later = await waitForStatus(rig.agent, "late", (s) => s !== CarbonStatus.CARBON_STATUS_PENDING);
  // The service's clock is today's: those 2024 hours are over and measured, so FINAL.
  t.is(later.carbonStatus, CarbonStatus.CARBON_STATUS_FINAL, later.carbonStatusReason);
  t.is(later.carbonStatusReason, "");
  t.deepEqual(later.gpuEnergyJ, m.gpuEnergyJ, "the energy is unchanged");
  assertGrams(t, later, expected(rig, later, HOUR, emIntensity));
});

/** Polls GetWindow until the carbon status satisfies `done` (or 20 s pass). */
async function waitForStatus(agent: TestAgent, key: string, done: (s: CarbonStatus) => boolean): Promise<Measurement> {
  let m = await get(agent, key);
  for (const deadline = Date.now() + 20_000; !done(m.carbonStatus) && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 100));
    m = await get(agent, key);
  }
  return m;
}

test("the current hour's live value makes grams PROVISIONAL; once the hour is measured they become FINAL", async (t) => {
  const h0 = DAY0 + 9 * HOUR;
  const estimated = (p: EmPoint): EmPoint => ({ ...p, carbonIntensity: 999, isEstimated: true, estimationMethod: "TIME_SLICER_AVERAGE" });
  const history = emHistory().map((p) => (Date.parse(p.datetime) === h0 + HOUR ? estimated(p) : p));
  const tt = new TimeTravel(h0 + 1000 - 30_000);
  const em = await startFakeElectricityMaps({ series: { [ZONE]: history }, nowMs: () => tt.now() });
  const data = tempDataDir();
  const intensity = await startTestIntensity(
    {
      ELECTRICITYMAPS_API_TOKEN: em.token,
      CARBONMON_ELECTRICITYMAPS_URL: em.url,
      CARBONMON_PROVIDERS: "electricitymaps,offline",
      CARBONMON_DATA_DIR: data.dir,
    },
    { clock: tt.clock },
  );
  t.teardown(async () => (await intensity.close(), await em.close(), data.cleanup()));
  const rig = await startRig(t, { periodMs: HOUR, startMs: h0 + 1000, intensityAddr: intensity.running.address, location: ZONE, tt });
  await begin(rig, "now");
  await cross(rig, h0 + HOUR);
  const m = await end(rig.agent, "now");
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_PROVISIONAL);
  t.regex(m.carbonStatusReason, /estimated value \(electricitymaps\)/);
  assertGrams(
    t,
    m,
    expected(rig, m, HOUR, (start) => (start === h0 + HOUR ? 999 : emIntensity(start))),
  );

  // The hour ends and ElectricityMaps publishes its measured value; the agent asks again by itself.
  em.setSeries(ZONE, emHistory());
  await cross(rig, h0 + 2 * HOUR);
  const later = await waitForStatus(rig.agent, "now", (s) => s === CarbonStatus.CARBON_STATUS_FINAL);
  t.is(later.carbonStatus, CarbonStatus.CARBON_STATUS_FINAL, later.carbonStatusReason);
  assertGrams(t, later, expected(rig, later, HOUR, emIntensity));
});

test("a window across an agent restart: the log before it and the runs' checkpoints keep every hour exact", async (t) => {
  const { intensity } = await emService(t);
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const h0 = DAY0 + 11 * HOUR;
  const rig = await startRig(t, {
    periodMs: HOUR,
    startMs: h0 + 1000,
    intensityAddr: intensity.running.address,
    location: ZONE,
    dataDir: data.dir,
  });
  await begin(rig, "restarted");
  await midPeriod(rig, HOUR);
  await cross(rig, h0 + HOUR);
  await midPeriod(rig, HOUR);
  rig.tt.jumpTo(h0 + 2 * HOUR - 2000);
  await settle(rig);
  await rig.agent.close(); // its last checkpoint: the run's final counters
  rig.tt.jumpTo(h0 + 2 * HOUR + 500); // the hour turns while the agent is down (the GPUs draw nothing then)
  rig.agent = await startTestAgent(rig.env, rig.tt.clock);
  await settle(rig);
  await midPeriod(rig, HOUR);
  rig.tt.jumpTo(h0 + 3 * HOUR - 15_000);
  await settle(rig);
  const m = await end(rig.agent, "restarted");
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_FINAL, m.carbonStatusReason);
  t.deepEqual(m.missingDevices, []);
  assertGrams(t, m, expected(rig, m, HOUR, emIntensity));
  t.is(m.carbonPeriods.length, 3);
});

test("no CARBONMON_LOCATION: the agent finds its host by IP location, and is PENDING while it cannot", async (t) => {
  let ipinfoUp = false;
  let ipinfoRequests = 0;
  const ipinfo = createHttpServer((_req, res) => {
    ipinfoRequests++;
    if (!ipinfoUp) return void res.writeHead(503).end("{}");
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ loc: "41.8781,-87.6298", city: "Chicago", country: "US" }));
  });
  await new Promise<void>((resolve) => ipinfo.listen(0, "127.0.0.1", resolve));
  t.teardown(() => void ipinfo.close());
  const em = await startFakeElectricityMaps({ series: { [ZONE]: emHistory() }, locations: [{ lat: 41.88, lon: -87.63, zone: ZONE }] });
  const intensity = await startTestIntensity({
    ELECTRICITYMAPS_API_TOKEN: em.token,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
    CARBONMON_PROVIDERS: "electricitymaps,offline",
  });
  t.teardown(async () => (await intensity.close(), await em.close()));
  const h0 = DAY0 + 13 * HOUR;
  const { port } = ipinfo.address() as { port: number };
  const rig = await startRig(t, {
    periodMs: HOUR,
    startMs: h0 + 1000,
    intensityAddr: intensity.running.address,
    location: undefined,
    // The default wait: the lookup fails (503) and EndWindow answers PENDING.
    agentEnv: { CARBONMON_IPINFO_URL: `http://127.0.0.1:${port}/json`, CARBONMON_CARBON_TIMEOUT_MS: "2000" },
  });
  await begin(rig, "located");
  await midPeriod(rig, HOUR);
  rig.tt.jumpTo(h0 + HOUR - 15_000);
  await settle(rig);
  const m = await end(rig.agent, "located");
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_PENDING);
  t.regex(m.carbonStatusReason, /IP-location|ipinfo|loc/i);
  ipinfoUp = true;
  const later = await waitForStatus(rig.agent, "located", (s) => s !== CarbonStatus.CARBON_STATUS_PENDING);
  t.is(later.carbonStatus, CarbonStatus.CARBON_STATUS_FINAL, later.carbonStatusReason);
  assertGrams(t, later, expected(rig, later, HOUR, emIntensity));
  t.true(
    em.requests.some((r) => r.path === "/carbon-intensity/latest" && r.query.lat === "41.8781"),
    "the coordinates went to the provider",
  );
  const asked = ipinfoRequests;
  await begin(rig, "located-again");
  await end(rig.agent, "located-again");
  t.is(ipinfoRequests, asked, "the host's location is looked up once");
});

test("a location no provider covers: PENDING with the service's status and hint, the energy kept", async (t) => {
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300" });
  t.teardown(() => intensity.close());
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 200, ms: 1000 }] }] });
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_LOCATION: "FR",
  });
  t.teardown(async () => (await agent.close(), nvml.cleanup()));
  await beginWindow(agent.client, { key: "fr" });
  await new Promise((r) => setTimeout(r, 300));
  const m = await end(agent, "fr");
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_PENDING);
  t.regex(m.carbonStatusReason, /answered NOT_FOUND: .*FR.*\(hint: /);
  t.true(m.gpuEnergyJ[0]! > 0);
  t.deepEqual(m.gpuCarbonG, {});
});

test("a key begun again while its last window is still being priced: EndWindow ends the new window", async (t) => {
  // An intensity service that accepts connections and never answers: pricing waits for its timeout.
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => void sockets.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const { port } = silent.address() as { port: number };
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 200, ms: 1000 }] }] });
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_INTENSITY_ADDR: `127.0.0.1:${port}`,
    CARBONMON_LOCATION: "DE",
    CARBONMON_CARBON_TIMEOUT_MS: "1500",
  });
  t.teardown(async () => (await agent.close(), nvml.cleanup()));
  const beginKey = () => beginWindow(agent.client, { key: "step" });
  const first = await beginKey();
  await new Promise((r) => setTimeout(r, 200));
  const firstEnd = end(agent, "step");
  // Until the first window is stored as ended (its pricing then waits for the silent service).
  for (let i = 0; i < 100 && !(await get(agent, "step")).ended; i++) await new Promise((r) => setTimeout(r, 20));
  const again = end(agent, "step"); // a repeated EndWindow for it: the same result
  const second = await beginKey();
  t.true(second.beginTime!.getTime() > first.beginTime!.getTime());
  await new Promise((r) => setTimeout(r, 200));
  const secondEnd = await end(agent, "step");
  const [a, b] = await Promise.all([firstEnd, again]);
  t.is(a.beginTime!.getTime(), first.beginTime!.getTime());
  t.is(b.beginTime!.getTime(), first.beginTime!.getTime());
  t.is(secondEnd.beginTime!.getTime(), second.beginTime!.getTime(), "the new window, not the one being priced");
  t.is(secondEnd.carbonStatus, CarbonStatus.CARBON_STATUS_PENDING);
  t.regex(secondEnd.carbonStatusReason, /DEADLINE_EXCEEDED/);
});

test("an IP-location lookup that hangs does not hold EndWindow past CARBONMON_CARBON_TIMEOUT_MS", async (t) => {
  const hanging = createHttpServer(() => undefined); // accepts, never answers
  await new Promise<void>((resolve) => hanging.listen(0, "127.0.0.1", resolve));
  t.teardown(() => (hanging.closeAllConnections(), void hanging.close()));
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300" });
  t.teardown(() => intensity.close());
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 200, ms: 1000 }] }] });
  const { port } = hanging.address() as { port: number };
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_IPINFO_URL: `http://127.0.0.1:${port}/json`,
    CARBONMON_CARBON_TIMEOUT_MS: "400",
  });
  t.teardown(async () => (await agent.close(), nvml.cleanup()));
  await beginWindow(agent.client, { key: "w" });
  const m = await end(agent, "w");
  // The agent's own timeout answered (the lookup's HTTP client would have waited 10 s, three times).
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_PENDING);
  t.regex(m.carbonStatusReason, /IP-location lookup .* took too long \(over 400 ms\)/);
});

test("CARBONMON_EMISSION_FACTOR and CARBONMON_ALLOW_ESTIMATED reach the provider", async (t) => {
  const hourStart = Math.floor(Date.now() / HOUR) * HOUR;
  const em = await startFakeElectricityMaps({
    // Through the next two hours: a window that lands after the turn of the hour has its value too.
    series: { [ZONE]: hourlySeries(ZONE, hourStart - 30 * HOUR, 33, () => 400) },
    nowMs: () => Date.now(),
  });
  const intensity = await startTestIntensity({
    ELECTRICITYMAPS_API_TOKEN: em.token,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
    CARBONMON_PROVIDERS: "electricitymaps,offline",
  });
  t.teardown(async () => (await intensity.close(), await em.close()));
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 200, ms: 1000 }] }] });
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_LOCATION: ZONE,
    CARBONMON_EMISSION_FACTOR: "direct",
    CARBONMON_ALLOW_ESTIMATED: "false",
    // EndWindow waits this long for the grams: a busy machine's lookup may take more than the default 2 s.
    CARBONMON_CARBON_TIMEOUT_MS: "30000",
  });
  t.teardown(async () => (await agent.close(), nvml.cleanup()));
  await beginWindow(agent.client, { key: "direct" });
  await new Promise((r) => setTimeout(r, 300));
  const m = await end(agent, "direct");
  t.not(m.carbonStatus, CarbonStatus.CARBON_STATUS_PENDING, m.carbonStatusReason);
  const asked = em.requests.filter((r) => r.path.startsWith("/carbon-intensity/"));
  t.true(asked.length > 0);
  t.true(
    asked.every((r) => r.query.emissionFactorType === "direct" && r.query.disableEstimations === "true"),
    JSON.stringify(asked.map((r) => r.query)),
  );
  t.is(m.carbonPeriods[0]!.intensity!.emissionFactor, EmissionFactorType.EMISSION_FACTOR_TYPE_DIRECT);
  t.true(Math.abs(m.gpuCarbonG[0]! - (m.gpuEnergyJ[0]! / 3.6e6) * 400) <= 1e-9 * m.gpuCarbonG[0]!);
});

test("grams still pending when the agent restarts are asked for by the next run", async (t) => {
  const down = await downAddress(t);
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const h0 = DAY0 + 15 * HOUR;
  const rig = await startRig(t, { periodMs: HOUR, startMs: h0 + 1000, intensityAddr: down.address, location: ZONE, dataDir: data.dir });
  await begin(rig, "across-runs");
  await midPeriod(rig, HOUR);
  await cross(rig, h0 + HOUR);
  const m = await end(rig.agent, "across-runs");
  t.is(m.carbonStatus, CarbonStatus.CARBON_STATUS_PENDING);
  await rig.agent.close();
  await down.release();
  await emService(t, { CARBONMON_INTENSITY_LISTEN: down.address });
  rig.agent = await startTestAgent(rig.env, rig.tt.clock);
  const later = await waitForStatus(rig.agent, "across-runs", (s) => s !== CarbonStatus.CARBON_STATUS_PENDING);
  t.is(later.carbonStatus, CarbonStatus.CARBON_STATUS_FINAL, later.carbonStatusReason);
  t.deepEqual(later.gpuEnergyJ, m.gpuEnergyJ);
  assertGrams(t, later, expected(rig, later, HOUR, emIntensity));
});
