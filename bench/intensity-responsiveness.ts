/**
 * Responsiveness benchmark: does the intensity service stay responsive while the largest ComputeEmissions
 * requests it accepts run? The real service (startTestIntensity, in-process, 127.0.0.1:0) against the
 * imitation ElectricityMaps (test/helpers/fake-electricitymaps.ts, real HTTP on 127.0.0.1), chain
 * "electricitymaps,offline" (nothing leaves the machine).
 *
 *   node --import tsx bench/intensity-responsiveness.ts [--seconds N]     (default 5 s per phase)
 *
 * Phases, in one run:
 *   1. baseline: sequential cached GetCurrentIntensity calls from this process (a small unrelated request;
 *      its answer is in the cache), N seconds, the service otherwise idle.
 *   2. loaded: the same calls while a child process keeps LANES maximum-size ComputeEmissions requests in
 *      flight in a loop (each MAX_SEGMENTS segments spanning MAX_SPAN_DAYS, the README's limits; the
 *      request is encoded once in the child, so that this process's event loop is the server's alone).
 *      The history they need is cached before the phase (one cold request), as an agent fleet's would be.
 * Reported: GetCurrentIntensity p50/p99 in both phases and their ratios, the ComputeEmissions durations,
 * and this process's event-loop delay (the longest the loop was blocked). Target: loaded p99 < 50 ms.
 *
 * The last line is `RESULT {json}` for notes.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import os from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { credentials, type ServiceError } from "@grpc/grpc-js";
import {
  CarbonIntensityClient,
  CarbonIntensityService,
  ComputeEmissionsRequest,
  ComputeEmissionsResponse,
  type IntensityPoint,
  type IntensityRequest,
} from "../proto/gen/carbonmon/intensity/v1/intensity.js";
import { MAX_SEGMENTS, MAX_SPAN_DAYS } from "../server/intensity/core/emissions.js";
import { FAKE_EM_TOKEN, hourlySeries, recordedHistory, startFakeElectricityMaps } from "../test/helpers/fake-electricitymaps.js";
import { startTestIntensity, type TestIntensity } from "../test/helpers/grpc.js";
import { f, parseSeconds, runBenchmark, stats, stopChild, table, verdict, type Stats, rawCall } from "./lib.js";

const HOUR_MS = 3_600_000;
const LANES = 4;
const DEVICES = 8;
const CURRENT_ZONE = "US-MIDW-MISO";
const EMISSIONS_ZONE = "DE";
const TARGET_P99_MS = 50;
const WARMUP_CALLS = 200;
const LOAD_ENV = "CARBONMON_BENCH_RESPONSIVENESS_LOAD";
const MAX_MESSAGE = 64 * 1024 * 1024;

type Callback<Res> = (err: ServiceError | null, res: Res) => void;

function unaryCall<Req, Res>(client: CarbonIntensityClient, method: (req: Req, cb: Callback<Res>) => unknown, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
  });
}

const currentRequest: IntensityRequest = { location: { zone: CURRENT_ZONE }, emissionFactor: 0, provider: "" };

/**
 * The largest request the service accepts: MAX_SEGMENTS segments, DEVICES devices taking turns, spanning
 * exactly MAX_SPAN_DAYS (first start to last end) and ending at endMs; energies vary by segment.
 */
function maxRequest(endMs: number): ComputeEmissionsRequest {
  const spanMs = MAX_SPAN_DAYS * 24 * HOUR_MS;
  const fromMs = endMs - spanMs;
  const perDevice = MAX_SEGMENTS / DEVICES;
  const lengthMs = spanMs / perDevice;
  const segments = Array.from({ length: MAX_SEGMENTS }, (_, i) => {
    const d = i % DEVICES;
    const k = Math.floor(i / DEVICES);
    const startMs = Math.round(fromMs + k * lengthMs);
    const stopMs = Math.round(fromMs + (k + 1) * lengthMs);
    const watts = 80 + ((k * 37 + d * 101) % 621);
    return { start: new Date(startMs), end: new Date(stopMs), energyJ: (watts * (stopMs - startMs)) / 1000, device: `gpu:${d}` };
  });
  return { location: { zone: EMISSIONS_ZONE }, emissionFactor: 0, gapPolicy: 0, provider: "", segments };
}

// ---- the load generator (child process): LANES ComputeEmissions in flight, raw HTTP/2, pre-encoded ----

interface LoadConfig {
  address: string;
  endMs: number;
}

interface LoadResult {
  durationsMs: number[];
  errors: number;
  lastError?: string;
  totalCarbonG: number[];
  requestBytes: number;
}

async function loadChild(config: LoadConfig): Promise<void> {
  const bytes = ComputeEmissionsRequest.encode(maxRequest(config.endMs)).finish();
  const frame = Buffer.alloc(5 + bytes.length);
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  const path = CarbonIntensityService.computeEmissions.path;
  const sessions = Array.from({ length: LANES }, () => http2.connect(`http://${config.address}`));
  for (const s of sessions) s.on("error", () => {});
  const out = (o: object): boolean => process.stdout.write(`${JSON.stringify(o)}\n`);
  const result: LoadResult = { durationsMs: [], errors: 0, totalCarbonG: [], requestBytes: bytes.length };
  let stopping = false;
  const lane = async (session: http2.ClientHttp2Session): Promise<void> => {
    while (!stopping) {
      const t0 = performance.now();
      try {
        const res = ComputeEmissionsResponse.decode(await rawCall(session, path, frame));
        result.durationsMs.push(performance.now() - t0);
        result.totalCarbonG.push(res.totalCarbonG);
      } catch (err) {
        result.errors++;
        result.lastError = (err as Error).message;
      }
    }
  };
  const lines = createInterface({ input: process.stdin });
  out({ ready: true });
  let lanes: Promise<void[]> | undefined;
  for await (const line of lines) {
    if (line === "run") {
      lanes = Promise.all(sessions.map(lane));
      out({ running: true });
    } else if (line === "stop") {
      stopping = true;
      await lanes;
      out(result);
      break;
    }
  }
  for (const s of sessions) s.close();
  lines.close();
}

/** The parent's handle on the load generator: one JSON line answers each command. */
class LoadGenerator {
  private readonly waiting: Array<(o: unknown) => void> = [];
  readonly exited: Promise<void>;
  stderr = "";

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        this.waiting.shift()?.(JSON.parse(line));
      } catch {
        // not a message
      }
    });
    child.stderr.on("data", (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    child.stdin.on("error", () => {});
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  next<T>(what: string, command?: string): Promise<T> {
    const answer = new Promise<T>((resolve) => this.waiting.push(resolve as (o: unknown) => void));
    if (command) this.child.stdin.write(`${command}\n`);
    return Promise.race([
      answer,
      this.exited.then(() => {
        throw new Error(`the load generator exited (${what}): ${this.stderr.trim().split("\n").slice(-5).join(" | ")}`);
      }),
    ]);
  }
}

// ---- probes ----

interface Probe {
  current: Stats;
  uncached: number;
  errors: number;
}

/** Sequential cached GetCurrentIntensity calls for `seconds`. */
async function probe(client: CarbonIntensityClient, seconds: number): Promise<Probe> {
  const ms: number[] = [];
  let uncached = 0;
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  while (performance.now() < deadline) {
    const t0 = performance.now();
    try {
      const p = await unaryCall<IntensityRequest, IntensityPoint>(client, client.getCurrentIntensity, currentRequest);
      if (!p.cached) uncached++;
    } catch {
      errors++;
    }
    ms.push(performance.now() - t0);
  }
  return { current: stats(ms), uncached, errors };
}

// ---- main ----

async function main(): Promise<number> {
  const seconds = parseSeconds();
  const cpus = os.cpus();
  console.log("carbonmon intensity responsiveness benchmark");
  console.log(
    `machine: ${cpus.length} CPUs, ${cpus[0]?.model ?? "unknown model"}; node ${process.version}; ${os.platform()} ${os.release()}`,
  );
  const cleanups: Array<{ name: string; run: () => void | Promise<void> }> = [];
  try {
    const lastHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    const spanHours = MAX_SPAN_DAYS * 24;
    // The segments end at the last complete hour; the fake has every hour of their span.
    const em = await startFakeElectricityMaps({
      series: {
        [CURRENT_ZONE]: recordedHistory(lastHour),
        [EMISSIONS_ZONE]: hourlySeries(EMISSIONS_ZONE, lastHour - (spanHours + 1) * HOUR_MS, spanHours + 1),
      },
    });
    cleanups.push({ name: "fake ElectricityMaps", run: () => em.close() });
    const dataDir = mkdtempSync(join(os.tmpdir(), "carbonmon-bench-responsiveness-"));
    cleanups.push({ name: "data dir", run: () => rmSync(dataDir, { recursive: true, force: true }) });
    const service: TestIntensity = await startTestIntensity({
      ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
      CARBONMON_ELECTRICITYMAPS_URL: em.url,
      CARBONMON_PROVIDERS: "electricitymaps,offline",
      CARBONMON_DATA_DIR: dataDir,
      CARBONMON_LOG_LEVEL: "silent",
    });
    cleanups.push({ name: "service", run: () => service.close() });
    const address = service.running.address;
    const client = new CarbonIntensityClient(address, credentials.createInsecure(), {
      "grpc.max_receive_message_length": MAX_MESSAGE,
      "grpc.max_send_message_length": MAX_MESSAGE,
    });
    cleanups.push({ name: "client", run: () => client.close() });

    // Warm: the current value cached, the emissions' history cached (one cold maximum-size request).
    await unaryCall<IntensityRequest, IntensityPoint>(client, client.getCurrentIntensity, currentRequest);
    const request = maxRequest(lastHour);
    const t0 = performance.now();
    const cold = await unaryCall<ComputeEmissionsRequest, ComputeEmissionsResponse>(client, client.computeEmissions, request);
    const coldMs = performance.now() - t0;
    console.log(
      `service ${address}; ComputeEmissions request: ${MAX_SEGMENTS} segments (${DEVICES} devices) spanning ${MAX_SPAN_DAYS} days; ` +
        `first (cold) call ${f(coldMs, 0)} ms, ${cold.periods.length} periods, ${f(cold.totalCarbonG, 1)} g`,
    );
    for (let i = 0; i < WARMUP_CALLS; i++)
      await unaryCall<IntensityRequest, IntensityPoint>(client, client.getCurrentIntensity, currentRequest);

    // ---- 1. baseline ----
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const idle = await probe(client, seconds);
    const idleLoopMaxMs = loop.max / 1e6;
    loop.reset();

    // ---- 2. loaded ----
    const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url)], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      env: { ...process.env, [LOAD_ENV]: JSON.stringify({ address, endMs: lastHour } satisfies LoadConfig) },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const gen = new LoadGenerator(child);
    cleanups.push({ name: "load generator", run: () => stopChild(child, gen.exited) });
    await gen.next("start");
    loop.reset();
    await gen.next("run", "run");
    const elu0 = performance.eventLoopUtilization();
    const loaded = await probe(client, seconds);
    const elu = performance.eventLoopUtilization(elu0);
    const loadedLoopMaxMs = loop.max / 1e6;
    const loadedLoopP99Ms = loop.percentile(99) / 1e6;
    loop.disable();
    const load = await gen.next<LoadResult>("stop", "stop");
    const emissions = stats(load.durationsMs);
    const distinctTotals = new Set(load.totalCarbonG).size;

    const row = (name: string, p: Probe, loopMaxMs: number): string[] => [
      name,
      String(p.current.n),
      f(p.current.p50, 2),
      f(p.current.p99, 2),
      f(p.current.max, 2),
      f(loopMaxMs, 1),
      String(p.errors),
      String(p.uncached),
    ];
    console.log("");
    console.log(`cached GetCurrentIntensity (zone ${CURRENT_ZONE}), sequential from the server's process, ${seconds} s per phase`);
    console.log(
      table(
        ["phase", "n", "p50 ms", "p99 ms", "max ms", "loop delay max ms", "errors", "uncached"],
        [row("idle (baseline)", idle, idleLoopMaxMs), row(`with ${LANES} concurrent max-size ComputeEmissions`, loaded, loadedLoopMaxMs)],
      ),
    );
    console.log(
      `ratios loaded/idle: p50 ×${f(loaded.current.p50 / idle.current.p50, 1)}, p99 ×${f(loaded.current.p99 / idle.current.p99, 1)}; ` +
        `server event loop busy ${f(elu.utilization * 100, 0)} % while loaded, loop delay p99 ${f(loadedLoopP99Ms, 1)} ms`,
    );
    console.log("");
    console.log(
      `ComputeEmissions (${MAX_SEGMENTS} segments, request ${f(load.requestBytes / 1024 / 1024, 1)} MiB, history cached), ${LANES} in flight:`,
    );
    console.log(
      table(
        ["completed", "p50 ms", "p99 ms", "max ms", "per second", "errors", "distinct totals"],
        [
          [
            String(emissions.n),
            f(emissions.p50, 0),
            f(emissions.p99, 0),
            f(emissions.max, 0),
            f(emissions.n / seconds, 2),
            String(load.errors),
            String(distinctTotals),
          ],
        ],
      ),
    );
    if (load.lastError) console.log(`  last ComputeEmissions error: ${load.lastError}`);
    const met = loaded.current.p99 < TARGET_P99_MS && loaded.errors === 0 && load.errors === 0 && emissions.n > 0;
    const sameTotals = distinctTotals <= 1 && (load.totalCarbonG[0] ?? cold.totalCarbonG) === cold.totalCarbonG;
    console.log("");
    console.log("Targets");
    console.log(
      `  cached GetCurrentIntensity p99 < ${TARGET_P99_MS} ms with ${LANES} concurrent maximum-size ComputeEmissions: ` +
        `${f(loaded.current.p99, 2)} ms (idle ${f(idle.current.p99, 2)} ms; ${emissions.n} ComputeEmissions completed) -> ${verdict(met)}`,
    );
    console.log(`  (check) every ComputeEmissions total equals the first call's: ${verdict(sameTotals)}`);
    console.log("");
    const result = {
      machine: { cpus: cpus.length, model: cpus[0]?.model, node: process.version },
      seconds,
      lanes: LANES,
      segments: MAX_SEGMENTS,
      spanDays: MAX_SPAN_DAYS,
      coldMs,
      idle: { ...idle, loopMaxMs: idleLoopMaxMs },
      loaded: { ...loaded, loopMaxMs: loadedLoopMaxMs, loopP99Ms: loadedLoopP99Ms, elu: elu.utilization },
      emissions: { ...emissions, errors: load.errors, requestBytes: load.requestBytes },
      targets: { p99MsMax: TARGET_P99_MS, met, sameTotals },
    };
    console.log(`RESULT ${JSON.stringify(result)}`);
    return 0;
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup.run();
      } catch (err) {
        console.error(`cleanup of ${cleanup.name} failed: ${(err as Error).message}`);
      }
    }
  }
}

const loadConfig = process.env[LOAD_ENV];
if (loadConfig !== undefined) await loadChild(JSON.parse(loadConfig) as LoadConfig);
else await runBenchmark("bench/intensity-responsiveness.ts", main);
