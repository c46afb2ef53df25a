/**
 * The NVML backend on a real GPU (../shared/GPU-CHECK.md): GetHost through gRPC, then windows of 0.05 s,
 * 1 s and 10 s under a bf16 matmul load, each compared with pynvml's own counter (an independent reader in
 * another process) and with the integral of instant power; power tracking at 10 Hz; event-loop delay;
 * carbon per window through an in-process intensity service with a known constant (static DE=300 g/kWh);
 * idle sampling on the real driver (NVML reads/s and CPU with nothing open, and 1 s windows begun while idle).
 * Usage: node --import tsx scripts/gpu-check.ts [outDir]. Needs python3 with pynvml and torch.
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { credentials } from "@grpc/grpc-js";
import {
  EnergyMonitorClient,
  BeginWindowRequest,
  type BeginWindowResponse,
  type EndWindowRequest,
  type GetHostResponse,
  type Measurement,
  type PowerSample,
} from "../proto/gen/carbonmon/agent/v1/agent.js";
import { startAgent } from "../server/agent/main.js";
import { startIntensity } from "../server/intensity/main.js";
import { loadAgentConfig, loadIntensityConfig } from "../server/shared/config.js";
import { createLogger } from "../server/shared/log.js";

const out = process.argv[2] ?? ".";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const here = new URL(".", import.meta.url).pathname;
const results: Record<string, unknown> = {};
const save = () => writeFileSync(join(out, "gpu-check.json"), JSON.stringify(results, null, 2));

/** Wall minus agent clock (Date.now() is exact on its tick). */
function wallOffsetMs(): number {
  const s = Date.now();
  let t = s;
  while (t === s) t = Date.now();
  return t - (performance.timeOrigin + performance.now());
}

type Row = [number, number, number, number | null, number, number | null, number];

/** pynvml's counter as a function of wall time: linear through the instants the value changed. */
function referenceEnergy(rows: Row[]): (tWallMs: number) => number {
  const pts: Array<[number, number]> = [];
  for (let i = 1; i < rows.length; i++) {
    if (rows[i]![2] !== rows[i - 1]![2]) pts.push([(rows[i - 1]![1] * 1000 + rows[i]![0] * 1000) / 2, rows[i]![2] / 1000]);
  }
  return (t) => {
    let k = pts.findIndex((p) => p[0] > t);
    if (k <= 0) k = k === 0 ? 1 : pts.length - 1;
    const [t0, e0] = pts[k - 1]!;
    const [t1, e1] = pts[k]!;
    return e0 + ((e1 - e0) * (t - t0)) / (t1 - t0);
  };
}

/** Integral of instant power (field 186, step-held from its own timestamp), joules. */
function powerIntegral(rows: Row[], a: number, b: number): number {
  const samples = rows.filter((r) => r[3] !== null).map((r) => [r[4] / 1000, r[3]! / 1000] as [number, number]);
  let e = 0;
  for (let i = 0; i < samples.length - 1; i++) {
    const lo = Math.max(a, samples[i]![0]);
    const hi = Math.min(b, samples[i + 1]![0]);
    if (hi > lo) e += (samples[i]![1] * (hi - lo)) / 1000;
  }
  return e;
}

async function main(): Promise<void> {
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const intensity = await startIntensity(
    loadIntensityConfig({
      env: {
        CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
        CARBONMON_DATA_DIR: "/tmp/carbonmon-gpu-check-intensity",
        CARBONMON_PROVIDERS: "static",
        CARBONMON_INTENSITY_CONSTANTS: `DE=${G_PER_KWH}`,
      },
    }),
    createLogger("gpu-check-intensity", "warn"),
  );
  const config = loadAgentConfig({
    env: {
      ...process.env,
      CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
      CARBONMON_DATA_DIR: "/tmp/carbonmon-gpu-check",
      CARBONMON_LOG_LEVEL: "warn",
      CARBONMON_INTENSITY_ADDR: intensity.running.address,
      CARBONMON_LOCATION: "DE",
      CARBONMON_IDLE_AFTER_MS: String(IDLE_AFTER_MS),
    },
  });
  const agent = await startAgent(config, createLogger("gpu-check", "warn"));
  const { sampler } = agent.context;
  const client = new EnergyMonitorClient(agent.running.address, credentials.createInsecure());
  const host = await new Promise<GetHostResponse>((res, rej) => client.getHost({}, (e, r) => (e ? rej(e) : res(r))));
  results.getHost = GetHostResponseToJson(host);
  console.log("GetHost:", JSON.stringify(results.getHost, null, 1));
  save();

  const refPath = "/tmp/gpu-ref.jsonl";
  const ref = spawn("python3", [join(here, "gpu-ref.py"), "300", refPath], { stdio: "inherit" });
  const refDone = new Promise((r) => ref.on("exit", r));
  const powerLog: Array<[number, number]> = [];
  const powerTimer = setInterval(() => {
    const s = sampler.snapshot("gpu:0");
    if (s?.powerW !== undefined) powerLog.push([sampler.now(), s.powerW]);
  }, 100);
  // Idle sampling on the real driver: no window or stream open (the update grid is learnt in the first ~1 s).
  await sleep(1500);
  const nvmlReads = () => (sampler.sources[0] as unknown as { energyReads: number }).energyReads;
  const idle0 = { reads: nvmlReads(), cpu: process.cpuUsage(), t: performance.now() };
  await sleep(3000);
  const idleS = (performance.now() - idle0.t) / 1000;
  const idleCpu = process.cpuUsage(idle0.cpu);
  results.idle = {
    samplerActive: sampler.active,
    nvmlReadsPerS: (nvmlReads() - idle0.reads) / idleS,
    processCpuPct: (100 * (idleCpu.user + idleCpu.system)) / 1e6 / idleS,
    idlePeriodMs: config.idleSamplingPeriodMs,
  };
  console.log("idle", JSON.stringify(results.idle));

  const load = spawn("python3", [join(here, "gpu-load.py"), "32"], { stdio: ["ignore", "pipe", "inherit"] });
  const loadDone = new Promise((r) => load.on("exit", r));
  const started = new Promise<number>((res) => load.stdout.on("data", (d: Buffer) => /LOAD_START/.test(String(d)) && res(sampler.now())));
  const loadStart = await Promise.race([started, loadDone.then(() => Promise.reject(new Error("the load did not start (torch?)")))]);
  console.log("load started", loadStart);
  await sleep(2000);

  type Win = { kind: string; t0: number; t1: number; m: Measurement; beginMs: number; endMs: number };
  const windows: Win[] = [];
  let n = 0;
  const openWindow = async (kind: string, ms: number): Promise<void> => {
    const key = `check-${kind}-${n++}`;
    const b0 = performance.now();
    const begun = await unaryCall<BeginWindowRequest, BeginWindowResponse>(
      client,
      client.beginWindow,
      BeginWindowRequest.fromPartial({ key }),
    );
    const beginMs = performance.now() - b0;
    await sleep(ms);
    const e0 = performance.now();
    const m = await unaryCall<EndWindowRequest, Measurement>(client, client.endWindow, { key, waitForCounterUpdate: true });
    const endMs = performance.now() - e0;
    windows.push({ kind, t0: begun.beginTime!.getTime(), t1: m.endTime!.getTime(), m, beginMs, endMs });
  };
  const long = openWindow("10s", 10_000);
  for (let i = 0; i < 5; i++) await openWindow("1s", 1000);
  for (let i = 0; i < 20; i++) await openWindow("0.05s", 50 + (i % 3));
  // Latency without waiting for the counter: what an orchestrator's BeginWindow/EndWindow costs.
  const latency: number[][] = [[], []];
  for (let i = 0; i < 200; i++) {
    const key = `latency-${i}`;
    let t = performance.now();
    await unaryCall<BeginWindowRequest, BeginWindowResponse>(client, client.beginWindow, BeginWindowRequest.fromPartial({ key }));
    latency[0]!.push(performance.now() - t);
    t = performance.now();
    await unaryCall<EndWindowRequest, Measurement>(client, client.endWindow, { key, waitForCounterUpdate: false });
    latency[1]!.push(performance.now() - t);
  }
  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
  results.latencyMs = {
    beginP50: pct(latency[0]!, 50),
    beginP99: pct(latency[0]!, 99),
    endP50: pct(latency[1]!, 50),
    endP99: pct(latency[1]!, 99),
  };
  console.log("latency", JSON.stringify(results.latencyMs));
  // WatchPower at 10 Hz while the load runs.
  const watched: number[] = [];
  const stream = client.watchPower({
    gpuIndices: [],
    cpuIndices: [],
    period: { seconds: 0n, nanos: 100_000_000 },
    skipGpus: false,
    skipCpus: true,
  });
  stream.on("data", (s: PowerSample) => watched.push(s.gpuPowerW[0] ?? NaN));
  stream.on("error", () => undefined);
  await sleep(3000);
  stream.cancel();
  results.watchPower = { samples: watched.length, meanW: watched.reduce((a, b) => a + b, 0) / Math.max(1, watched.length) };
  console.log("watchPower", JSON.stringify(results.watchPower));
  await long;
  // Windows begun while the agent samples at its idle rate (CARBONMON_IDLE_AFTER_MS after the last window).
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 100 && sampler.active; j++) await sleep(50);
    if (sampler.active) throw new Error("the sampler did not go idle");
    await sleep(300 + 170 * i); // other phases of the counter's update grid
    await openWindow("1s-idle", 1000);
  }
  await loadDone;
  await sleep(6000);
  clearInterval(powerTimer);
  ref.kill("SIGINT"); // KeyboardInterrupt: the reference file is flushed and closed
  await refDone;

  const rows = readFileSync(refPath, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Row);
  const offset = wallOffsetMs();
  const refE = referenceEnergy(rows);
  const compared = windows.map((w) => {
    const reference = refE(w.t1 + offset) - refE(w.t0 + offset);
    const integral = powerIntegral(rows, w.t0 + offset, w.t1 + offset);
    const energyJ = w.m.gpuEnergyJ[0]!;
    const uncertaintyJ = w.m.gpuEnergyUncertaintyJ[0]!;
    return {
      kind: w.kind,
      t0: w.t0,
      t1: w.t1,
      beginRpcMs: w.beginMs,
      endRpcMs: w.endMs,
      interpolated: { energyJ, uncertaintyJ },
      referenceJ: reference,
      powerIntegralJ: integral,
      relErr: (energyJ - reference) / reference,
      approximations: w.m.approximations.map((a) => a.kind),
    };
  });
  results.windows = compared;
  for (const w of compared) {
    console.log(
      `${w.kind.padEnd(6)} agent ${w.interpolated.energyJ.toFixed(2)} J ±${w.interpolated.uncertaintyJ.toFixed(2)} | pynvml ${w.referenceJ.toFixed(2)} J | ∫P ${w.powerIntegralJ.toFixed(2)} J | rel ${(100 * w.relErr).toFixed(3)} % | end RPC ${w.endRpcMs.toFixed(1)} ms`,
    );
  }
  const summary = ["10s", "1s", "1s-idle", "0.05s"].map((kind) => {
    const ws = compared.filter((w) => w.kind === kind);
    const within = ws.filter((w) => Math.abs(w.interpolated.energyJ - w.referenceJ) <= w.interpolated.uncertaintyJ).length;
    const maxRel = Math.max(...ws.map((w) => Math.abs(w.relErr)));
    const meanBound = ws.reduce((a, w) => a + w.interpolated.uncertaintyJ / w.interpolated.energyJ, 0) / ws.length;
    return { kind, windows: ws.length, withinBoundOfPynvml: within, maxRelErrVsPynvml: maxRel, meanRelBound: meanBound };
  });
  results.summary = summary;
  console.log(JSON.stringify(summary, null, 1));
  // Does field 83 carry the update instant (same timestamp while the value holds) or the read time?
  let same = 0;
  let held = 0;
  for (let i = 1; i < rows.length; i++) {
    if (rows[i]![5] !== null && rows[i]![5] === rows[i - 1]![5]) {
      held++;
      if (rows[i]![6] === rows[i - 1]![6]) same++;
    }
  }
  const changes = rows.filter((r, i) => i > 0 && r[2] !== rows[i - 1]![2]).map((r) => r[0]);
  const gaps = changes
    .slice(1)
    .map((t, i) => (t - changes[i]!) * 1000)
    .sort((a, b) => a - b);
  results.field83 = {
    heldPairs: held,
    sameTimestampWhileHeld: same,
    counterUpdateGapMsP50: gaps[Math.floor(gaps.length / 2)],
    refReads: rows.length,
    refReadMsMean: rows.reduce((a, r) => a + (r[1] - r[0]) * 1000, 0) / rows.length,
  };
  const busy = powerLog.filter(([t]) => t > loadStart + 3000 && t < loadStart + 20_000).map(([, p]) => p);
  const idle = powerLog.filter(([t]) => t < loadStart - 500).map(([, p]) => p);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  results.power = { idleMeanW: mean(idle), busyMeanW: mean(busy), samples: powerLog.length };
  eld.disable();
  results.eventLoopDelayMs = { p50: eld.percentile(50) / 1e6, p99: eld.percentile(99) / 1e6, max: eld.max / 1e6 };
  results.nvmlEnergyReads = nvmlReads();
  console.log(JSON.stringify({ field83: results.field83, power: results.power, eventLoopDelayMs: results.eventLoopDelayMs }, null, 1));
  const tenS = windows.find((w) => w.kind === "10s")!.m;
  const energyJ = tenS.gpuEnergyJ[0] ?? 0;
  results.carbon = {
    status: tenS.carbonStatus,
    reason: tenS.carbonStatusReason,
    gpuCarbonG: tenS.gpuCarbonG[0],
    expectedG: (energyJ / 3.6e6) * G_PER_KWH,
    periods: tenS.carbonPeriods.map((p) => ({
      from: p.intensity?.validFrom,
      to: p.intensity?.validTo,
      energyJ: p.energyJ,
      carbonG: p.carbonG,
    })),
    pricedWindows: windows.filter((w) => w.m.carbonPeriods.length > 0).length,
    windows: windows.length,
  };
  console.log("carbon", JSON.stringify(results.carbon));
  save();
  client.close();
  await agent.running.shutdown(1000);
  await intensity.running.shutdown(1000);
}

/** Short, so that the check can begin windows while idle within one load. */
const IDLE_AFTER_MS = 500;

/** The static provider's constant for the check's zone. */
const G_PER_KWH = 300;

function unaryCall<Req, Res>(
  client: EnergyMonitorClient,
  method: (req: Req, cb: (e: Error | null, r: Res) => void) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => method.call(client, req, (e: Error | null, r: Res) => (e ? reject(e) : resolve(r))));
}

function GetHostResponseToJson(h: GetHostResponse): unknown {
  return JSON.parse(JSON.stringify(h, (_k, v) => (typeof v === "bigint" ? Number(v) : v)));
}

main().catch((err) => {
  console.error(err);
  results.error = String(err?.stack ?? err);
  save();
  process.exit(1);
});
