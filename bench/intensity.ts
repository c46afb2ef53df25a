/**
 * Intensity benchmark: the real intensity service (startTestIntensity, in-process, 127.0.0.1:0) against the
 * imitation ElectricityMaps (test/helpers/fake-electricitymaps.ts, real HTTP on 127.0.0.1), chain
 * "electricitymaps,offline" (nothing leaves the machine).
 *
 *   node --import tsx bench/intensity.ts [--seconds N]     (default 5 s per measured phase)
 *
 * Sections, in one run:
 *   1. cached GetCurrentIntensity over gRPC on loopback, against an empty unary RPC on the same server
 *      (grpc.health.v1.Health/Check), measured alike in the same run:
 *      a. throughput: a load generator in a child process (so that the server's event loop is this
 *         process's alone: "2 cores" = server + client) keeps IN_FLIGHT calls in flight over CONNECTIONS
 *         connections, with two clients: the generated CarbonIntensityClient (grpc-js, as callers use it;
 *         the target's figure) and raw node:http2 with the request pre-encoded (about half the client CPU
 *         per call, so more of the 2 cores is left to the server). Each (client, RPC) pair runs in rotating
 *         blocks of BLOCK_MS, N seconds each. Server CPU and event-loop utilisation are this process's
 *         during the blocks; the child's CPU is reported apart. Target: ≥ 10,000 cached requests/s on 2
 *         cores (the process is pinned to 2 CPUs where the machine has more and taskset exists).
 *      b. latency: sequential calls from this process (client cost in both kinds alike), alternating blocks
 *         of LAT_BLOCK after a warm-up, N seconds. p50/p99 and their ratios to the empty RPC are reported.
 *   2. 1,000 concurrent cold requests: GetCurrentIntensity for a zone never asked before, all issued at
 *      once over the same connections; the fake's /carbon-intensity/latest calls for it. Target: exactly 1.
 *   3. ComputeEmissions for 30 days × 16 devices (hourly segments: 11,520) against 720 hourly points:
 *      a. the pure computeEmissions (server/intensity/core/emissions.ts), median of PURE_RUNS after warm-up.
 *         Target: < 10 ms.
 *      b. the RPC end to end over gRPC (the fake serving the 720 h through /past-range, 3 chunks of ≤ 240 h):
 *         the first call cold (upstream + SQLite store + compute), then cached (history from the TTL cache),
 *         with the protobuf encode/decode of the request and response measured apart for where the time goes.
 *
 * The last line is `RESULT {json}` for notes.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import os from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { credentials, loadPackageDefinition, type Client, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import {
  CarbonIntensityClient,
  CarbonIntensityService,
  ComputeEmissionsRequest,
  ComputeEmissionsResponse,
  IntensityPoint,
  IntensityRequest,
} from "../proto/gen/carbonmon/intensity/v1/intensity.js";
import { computeEmissions, type EmissionsResult, type EnergySegment } from "../server/intensity/core/emissions.js";
import type { Point } from "../server/intensity/core/point.js";
import {
  FAKE_EM_TOKEN,
  hourlySeries,
  recordedHistory,
  startFakeElectricityMaps,
  type FakeElectricityMaps,
} from "../test/helpers/fake-electricitymaps.js";
import { startTestIntensity, type TestIntensity } from "../test/helpers/grpc.js";
import { f, parseSeconds, runBenchmark, stats, table, verdict, type Stats, rawCall } from "./lib.js";
import { stopChild } from "./lib.js";

const HOUR_MS = 3_600_000;
const IN_FLIGHT = 64;
const CONNECTIONS = 4;
const BLOCK_MS = 500;
const WARMUP_BLOCK_MS = 300;
const LAT_BLOCK = 20;
const LAT_WARMUP = 200;
const COLD_REQUESTS = 1000;
const DEVICES = 16;
const DAYS = 30;
const HOURS = DAYS * 24;
const PURE_WARMUP = 5;
const PURE_RUNS = 20;
const RPC_CACHED_RUNS = 10;
const CODEC_RUNS = 9;
const PINNED_CPUS = 2;
const CURRENT_ZONE = "US-MIDW-MISO";
const COLD_ZONE = "FR";
const EMISSIONS_ZONE = "DE";
const TARGET_RPS = 10_000;
const TARGET_UPSTREAM = 1;
const TARGET_PURE_MS = 10;
const LOAD_ENV = "CARBONMON_BENCH_INTENSITY_LOAD";
const MAX_MESSAGE = 64 * 1024 * 1024;

// ---- gRPC helpers (shared by this process and the load generator) ----

type Callback<Res> = (err: ServiceError | null, res: Res) => void;
type Kind = "current" | "empty";
/** grpc: the generated CarbonIntensityClient and a Health client (grpc-js), as callers use them;
 * http2: node:http2 with the request pre-encoded, the least a client can spend per call (server-bound). */
type ClientKind = "grpc" | "http2";
const MODES: ReadonlyArray<{ client: ClientKind; kind: Kind }> = [
  { client: "grpc", kind: "current" },
  { client: "grpc", kind: "empty" },
  { client: "http2", kind: "current" },
  { client: "http2", kind: "empty" },
];
const HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check";

interface HealthClient extends Client {
  Check(request: { service: string }, callback: Callback<{ status: string }>): unknown;
}

let healthCtor: (new (address: string, creds: ReturnType<typeof credentials.createInsecure>, options?: object) => HealthClient) | undefined;

/** A Health client; separate: its own connection (local subchannel pool) rather than a shared one. */
function healthClient(address: string, separate = false): HealthClient {
  if (!healthCtor) {
    const root = loadPackageDefinition(loadSync(healthProtoPath, { keepCase: true, enums: String })) as any;
    healthCtor = root.grpc.health.v1.Health;
  }
  return new healthCtor!(address, credentials.createInsecure(), separate ? { "grpc.use_local_subchannel_pool": 1 } : {});
}

function intensityClient(address: string, separate = false): CarbonIntensityClient {
  return new CarbonIntensityClient(address, credentials.createInsecure(), {
    "grpc.max_receive_message_length": MAX_MESSAGE,
    "grpc.max_send_message_length": MAX_MESSAGE,
    ...(separate ? { "grpc.use_local_subchannel_pool": 1 } : {}),
  });
}

function unaryCall<Req, Res>(client: Client, method: (req: Req, cb: Callback<Res>) => unknown, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
  });
}

const currentRequest = (zone: string): IntensityRequest => ({ location: { zone }, emissionFactor: 0, provider: "" });

interface ClientPair {
  intensity: CarbonIntensityClient;
  health: HealthClient;
}

/** One call of the kind; resolves with whether the answer came from the cache (always true for "empty"). */
function callKind(c: ClientPair, kind: Kind, zone: string): Promise<boolean> {
  if (kind === "empty") return unaryCall(c.health, c.health.Check, { service: "" }).then(() => true);
  return unaryCall<IntensityRequest, IntensityPoint>(c.intensity, c.intensity.getCurrentIntensity, currentRequest(zone)).then(
    (p) => p.cached,
  );
}

// ---- the load generator (child process) ----

interface LoadConfig {
  address: string;
  connections: number;
  inFlight: number;
  zone: string;
}

interface BlockResult {
  client: ClientKind;
  kind: Kind;
  completed: number;
  errors: number;
  uncached: number;
  elapsedMs: number;
  cpuUs: number;
  lastError?: string;
}

/** A gRPC message as it travels: uncompressed flag, big-endian length, bytes. */
function grpcFrame(bytes: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + bytes.length);
  b.writeUInt32BE(bytes.length, 1);
  b.set(bytes, 5);
  return b;
}

/** Runs in the child: reads "run <client> <kind> <ms>" and "stop" lines, answers one JSON line per block. */
async function loadChild(config: LoadConfig): Promise<void> {
  const pairs: ClientPair[] = Array.from({ length: config.connections }, () => ({
    intensity: intensityClient(config.address, true),
    health: healthClient(config.address, true),
  }));
  const sessions = Array.from({ length: config.connections }, () => http2.connect(`http://${config.address}`));
  for (const s of sessions) s.on("error", () => {}); // a failed call reports it
  const frames: Record<Kind, Buffer> = {
    current: grpcFrame(IntensityRequest.encode(currentRequest(config.zone)).finish()),
    empty: grpcFrame(new Uint8Array(0)), // HealthCheckRequest { service: "" }
  };
  const paths: Record<Kind, string> = { current: CarbonIntensityService.getCurrentIntensity.path, empty: HEALTH_CHECK_PATH };
  const rawKind = async (session: http2.ClientHttp2Session, kind: Kind): Promise<boolean> => {
    const bytes = await rawCall(session, paths[kind], frames[kind]);
    return kind === "empty" || IntensityPoint.decode(bytes).cached;
  };
  const out = (o: object): boolean => process.stdout.write(`${JSON.stringify(o)}\n`);
  const runBlock = async (client: ClientKind, kind: Kind, ms: number): Promise<BlockResult> => {
    let completed = 0;
    let errors = 0;
    let uncached = 0;
    let lastError: string | undefined;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const deadline = t0 + ms;
    const lane = async (i: number): Promise<void> => {
      const pair = pairs[i % pairs.length]!;
      const session = sessions[i % sessions.length]!;
      while (performance.now() < deadline) {
        try {
          if (!(await (client === "grpc" ? callKind(pair, kind, config.zone) : rawKind(session, kind)))) uncached++;
          completed++;
        } catch (err) {
          errors++;
          lastError = (err as Error).message;
        }
      }
    };
    await Promise.all(Array.from({ length: config.inFlight }, (_, i) => lane(i)));
    const elapsedMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    return { client, kind, completed, errors, uncached, elapsedMs, cpuUs: cpu.user + cpu.system, ...(lastError ? { lastError } : {}) };
  };
  // Connect every channel and session before the first block.
  for (const p of pairs) {
    await callKind(p, "empty", config.zone);
    await callKind(p, "current", config.zone);
  }
  for (const s of sessions) {
    await rawKind(s, "empty");
    await rawKind(s, "current");
  }
  out({ ready: true });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [cmd, client, kind, ms] = line.split(" ");
    if (cmd === "run" && (client === "grpc" || client === "http2") && (kind === "current" || kind === "empty"))
      out(await runBlock(client, kind, Number(ms)));
    else if (cmd === "stop") break;
  }
  for (const p of pairs) {
    p.intensity.close();
    p.health.close();
  }
  for (const s of sessions) s.close();
  lines.close();
}

/** The parent's handle on the load generator. */
class LoadGenerator {
  private readonly waiting: Array<(o: any) => void> = [];
  readonly exited: Promise<void>;
  stderr = "";

  private constructor(readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on("line", (line) => {
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      this.waiting.shift()?.(msg);
    });
    child.stderr.on("data", (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    child.stdin.on("error", () => {}); // EPIPE if it died: reported through `exited`
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  private async next<T>(what: string, timeoutMs: number): Promise<T> {
    const p = new Promise<T>((resolve) => this.waiting.push(resolve));
    const abort = new AbortController();
    const timeout = sleep(timeoutMs, undefined, { signal: abort.signal }).catch(() => undefined);
    const outcome = await Promise.race([p, this.exited.then(() => undefined), timeout.then(() => undefined)]);
    abort.abort();
    if (outcome === undefined)
      throw new Error(
        `the load generator did not answer (${what})${this.stderr ? `: ${this.stderr.trim().split("\n").slice(-5).join(" | ")}` : ""}`,
      );
    return outcome;
  }

  static async start(config: LoadConfig): Promise<LoadGenerator> {
    // --cpu-prof flags given to this process (in their --flag=value form) profile the load generator too.
    const profiling = process.execArgv.filter((a) => a.startsWith("--cpu-prof"));
    const child = spawn(process.execPath, [...profiling, "--import", "tsx", fileURLToPath(import.meta.url)], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      env: { ...process.env, [LOAD_ENV]: JSON.stringify(config) },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const g = new LoadGenerator(child);
    try {
      await g.next("start", 30_000);
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    }
    return g;
  }

  async run(client: ClientKind, kind: Kind, ms: number): Promise<BlockResult> {
    const p = this.next<BlockResult>(`${client} ${kind} block`, ms + 30_000);
    this.child.stdin.write(`run ${client} ${kind} ${ms}\n`);
    return p;
  }

  stop(): Promise<void> {
    return stopChild(this.child, this.exited);
  }
}

// ---- section 1a: throughput ----

interface Throughput {
  client: ClientKind;
  kind: Kind;
  completed: number;
  errors: number;
  uncached: number;
  seconds: number;
  rps: number;
  /** This process (the server) during the blocks, % of one core. */
  serverCpuPct: number;
  /** Event-loop utilisation of this process during the blocks (0–1). */
  serverElu: number;
  serverCpuUsPerRequest: number;
  /** The load generator, % of one core. */
  clientCpuPct: number;
  clientCpuUsPerRequest: number;
  lastError?: string;
}

type ThroughputByMode = Record<`${ClientKind}/${Kind}`, Throughput>;

/** Every mode in turn, BLOCK_MS each, the order rotated every round, until each mode had `seconds`. */
async function measureThroughput(gen: LoadGenerator, seconds: number): Promise<{ modes: ThroughputByMode; rounds: number }> {
  for (const m of MODES) await gen.run(m.client, m.kind, WARMUP_BLOCK_MS);
  const rounds = Math.max(2, Math.ceil((seconds * 1000) / BLOCK_MS));
  const empty = () => ({
    completed: 0,
    errors: 0,
    uncached: 0,
    ms: 0,
    cpuUs: 0,
    eluActive: 0,
    eluIdle: 0,
    clientCpuUs: 0,
    lastError: undefined as string | undefined,
  });
  const acc = new Map(MODES.map((m) => [`${m.client}/${m.kind}`, empty()]));
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < MODES.length; j++) {
      const m = MODES[(r + j) % MODES.length]!;
      const elu0 = performance.eventLoopUtilization();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const b = await gen.run(m.client, m.kind, BLOCK_MS);
      const wallMs = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const elu = performance.eventLoopUtilization(elu0);
      const a = acc.get(`${m.client}/${m.kind}`)!;
      a.completed += b.completed;
      a.errors += b.errors;
      a.uncached += b.uncached;
      a.ms += b.elapsedMs;
      // The server's CPU over the block as this process saw it (a little longer than the child's elapsed).
      a.cpuUs += ((cpu.user + cpu.system) * b.elapsedMs) / wallMs;
      a.eluActive += elu.active;
      a.eluIdle += elu.idle;
      a.clientCpuUs += b.cpuUs;
      if (b.lastError) a.lastError = b.lastError;
    }
  }
  const modes = {} as ThroughputByMode;
  for (const m of MODES) {
    const a = acc.get(`${m.client}/${m.kind}`)!;
    const s = a.ms / 1000;
    modes[`${m.client}/${m.kind}`] = {
      client: m.client,
      kind: m.kind,
      completed: a.completed,
      errors: a.errors,
      uncached: a.uncached,
      seconds: s,
      rps: a.completed / s,
      serverCpuPct: (a.cpuUs / 1e6 / s) * 100,
      serverElu: a.eluActive / (a.eluActive + a.eluIdle),
      serverCpuUsPerRequest: a.cpuUs / Math.max(1, a.completed),
      clientCpuPct: (a.clientCpuUs / 1e6 / s) * 100,
      clientCpuUsPerRequest: a.clientCpuUs / Math.max(1, a.completed),
      ...(a.lastError ? { lastError: a.lastError } : {}),
    };
  }
  return { modes, rounds };
}

// ---- section 1b: latency ----

interface Latency {
  current: Stats;
  empty: Stats;
  uncached: number;
  seconds: number;
  blocks: number;
}

async function measureLatency(c: ClientPair, zone: string, seconds: number): Promise<Latency> {
  const lat: Record<Kind, number[]> = { current: [], empty: [] };
  let uncached = 0;
  const one = async (kind: Kind): Promise<number> => {
    const t0 = performance.now();
    const cached = await callKind(c, kind, zone);
    const ms = performance.now() - t0;
    if (!cached) uncached++;
    return ms;
  };
  for (let i = 0; i < LAT_WARMUP; i += LAT_BLOCK) {
    for (let j = 0; j < LAT_BLOCK; j++) await one("empty");
    for (let j = 0; j < LAT_BLOCK; j++) await one("current");
  }
  uncached = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let blocks = 0;
  while (performance.now() < deadline) {
    for (const kind of (blocks % 2 === 0 ? ["empty", "current"] : ["current", "empty"]) as Kind[]) {
      for (let j = 0; j < LAT_BLOCK; j++) lat[kind].push(await one(kind));
    }
    blocks++;
  }
  return { current: stats(lat.current), empty: stats(lat.empty), uncached, seconds: (performance.now() - t0) / 1000, blocks };
}

// ---- section 2: cold requests ----

interface Cold {
  requests: number;
  upstreamLatestCalls: number;
  upstreamLatestCallsAllZones: number;
  ms: number;
  errors: number;
  cachedAnswers: number;
  distinctValues: number;
  lastError?: string;
}

async function coldBurst(pairs: ClientPair[], em: FakeElectricityMaps, zone: string): Promise<Cold> {
  const latest = (z?: string): number =>
    em.requests.filter((r) => r.path === "/carbon-intensity/latest" && (z === undefined || r.query.zone === z)).length;
  const before = latest(zone);
  const beforeAll = latest();
  const t0 = performance.now();
  const calls = Array.from({ length: COLD_REQUESTS }, (_, i) => {
    const p = pairs[i % pairs.length]!;
    return unaryCall<IntensityRequest, IntensityPoint>(p.intensity, p.intensity.getCurrentIntensity, currentRequest(zone));
  });
  const settled = await Promise.allSettled(calls);
  const ms = performance.now() - t0;
  const ok = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const failed = settled.flatMap((s) => (s.status === "rejected" ? [String((s.reason as Error).message)] : []));
  return {
    requests: COLD_REQUESTS,
    upstreamLatestCalls: latest(zone) - before,
    upstreamLatestCallsAllZones: latest() - beforeAll,
    ms,
    errors: failed.length,
    cachedAnswers: ok.filter((p) => p.cached).length,
    distinctValues: new Set(ok.map((p) => p.gPerKwh)).size,
    ...(failed.length ? { lastError: failed[failed.length - 1]! } : {}),
  };
}

// ---- section 3: emissions ----

/** 16 devices × 720 hourly segments from fromMs, in time order (hour by hour, device by device). */
function fleetSegments(fromMs: number): EnergySegment[] {
  const out: EnergySegment[] = [];
  for (let h = 0; h < HOURS; h++) {
    for (let d = 0; d < DEVICES; d++) {
      // 80–700 W average over the hour, varying by device and hour.
      const watts = 80 + ((h * 37 + d * 101) % 621);
      out.push({ startMs: fromMs + h * HOUR_MS, endMs: fromMs + (h + 1) * HOUR_MS, energyJ: watts * 3600, device: `gpu:${d}` });
    }
  }
  return out;
}

/** The 720 points the service builds from hourlySeries(zone, fromMs, 720) (g/kWh 100 + i). */
function hourlyPoints(zone: string, fromMs: number): Point[] {
  return Array.from({ length: HOURS }, (_, i) => ({
    zone,
    gPerKwh: 100 + i,
    validFromMs: fromMs + i * HOUR_MS,
    validToMs: fromMs + (i + 1) * HOUR_MS,
    isEstimated: false,
    provider: "electricitymaps",
    signal: "average" as const,
    emissionFactor: "lifecycle" as const,
    source: "live" as const,
    fetchedAtMs: Date.now(),
  }));
}

function timeRuns(runs: number, warmup: number, fn: () => unknown): Stats & { min: number } {
  for (let i = 0; i < warmup; i++) fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return { ...stats(ms), min: Math.min(...ms) };
}

interface Codec {
  requestBytes: number;
  responseBytes: number;
  requestEncodeMs: number;
  requestDecodeMs: number;
  responseEncodeMs: number;
  responseDecodeMs: number;
}

function measureCodec(req: ComputeEmissionsRequest, res: ComputeEmissionsResponse): Codec {
  const reqBytes = ComputeEmissionsRequest.encode(req).finish();
  const resBytes = ComputeEmissionsResponse.encode(res).finish();
  return {
    requestBytes: reqBytes.length,
    responseBytes: resBytes.length,
    requestEncodeMs: timeRuns(CODEC_RUNS, 1, () => ComputeEmissionsRequest.encode(req).finish()).p50,
    requestDecodeMs: timeRuns(CODEC_RUNS, 1, () => ComputeEmissionsRequest.decode(reqBytes)).p50,
    responseEncodeMs: timeRuns(CODEC_RUNS, 1, () => ComputeEmissionsResponse.encode(res).finish()).p50,
    responseDecodeMs: timeRuns(CODEC_RUNS, 1, () => ComputeEmissionsResponse.decode(resBytes)).p50,
  };
}

// ---- machine ----

/** Pins this process (all threads; children inherit it) to CPUs 0..n-1 where there are more; says what it did. */
function pinToCpus(n: number): string {
  const count = os.cpus().length;
  if (count <= n) return `not pinned (${count} CPUs)`;
  if (os.platform() !== "linux") return `not pinned (${os.platform()}): all ${count} CPUs`;
  const list = Array.from({ length: n }, (_, i) => i).join(",");
  const r = spawnSync("taskset", ["-a", "-p", "-c", list, String(process.pid)], { encoding: "utf8" });
  return r.status === 0
    ? `pinned to CPUs ${list} (taskset -a)`
    : `not pinned (taskset failed: ${(r.error?.message ?? r.stderr).trim()}): all ${count} CPUs`;
}

// ---- main ----

async function main(): Promise<number> {
  const seconds = parseSeconds();
  const cpus = os.cpus();
  const started = performance.now();
  const pinning = pinToCpus(PINNED_CPUS);
  console.log("carbonmon intensity benchmark");
  console.log(
    `machine: ${cpus.length} CPUs, ${cpus[0]?.model ?? "unknown model"}; node ${process.version}; ${os.platform()} ${os.release()}; ${pinning}`,
  );
  console.log(
    `setup: intensity service in-process on 127.0.0.1:0, chain electricitymaps,offline against the imitation ElectricityMaps (HTTP, 127.0.0.1); ` +
      `${seconds} s per measured phase`,
  );

  const cleanups: Array<{ name: string; run: () => void | Promise<void> }> = [];
  try {
    // ---- setup ----
    const nowMs = Date.now();
    const lastHour = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
    // The 720 complete hours before the current one: past-range only (no /history), all of it in the past.
    const emissionsFromMs = lastHour - HOURS * HOUR_MS;
    const em = await startFakeElectricityMaps({
      series: {
        [CURRENT_ZONE]: recordedHistory(lastHour),
        [COLD_ZONE]: hourlySeries(COLD_ZONE, lastHour - 23 * HOUR_MS, 24),
        [EMISSIONS_ZONE]: hourlySeries(EMISSIONS_ZONE, emissionsFromMs, HOURS),
      },
    });
    cleanups.push({ name: "fake ElectricityMaps", run: () => em.close() });
    const dataDir = mkdtempSync(join(os.tmpdir(), "carbonmon-bench-intensity-"));
    cleanups.push({ name: "data dir", run: () => rmSync(dataDir, { recursive: true, force: true }) });
    let service: TestIntensity;
    try {
      service = await startTestIntensity({
        ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
        CARBONMON_ELECTRICITYMAPS_URL: em.url,
        CARBONMON_PROVIDERS: "electricitymaps,offline",
        CARBONMON_DATA_DIR: dataDir,
        CARBONMON_LOG_LEVEL: "silent",
      });
    } catch (err) {
      console.error(`the intensity service could not start: ${(err as Error).stack ?? String(err)}`);
      return 1;
    }
    cleanups.push({ name: "service", run: () => service.close() });
    const address = service.running.address;
    console.log(`service: ${address}; fake ElectricityMaps ${em.url}`);

    const pairs: ClientPair[] = Array.from({ length: CONNECTIONS }, () => ({
      intensity: intensityClient(address, true),
      health: healthClient(address, true),
    }));
    cleanups.push({
      name: "clients",
      run: () => {
        for (const p of pairs) {
          p.intensity.close();
          p.health.close();
        }
      },
    });
    // Warm the cache for the zone of section 1 (one upstream call).
    const first = await unaryCall<IntensityRequest, IntensityPoint>(
      pairs[0]!.intensity,
      pairs[0]!.intensity.getCurrentIntensity,
      currentRequest(CURRENT_ZONE),
    );
    const ttlLeftS = (Math.max(30_000, Math.min(300_000, (first.validTo?.getTime() ?? 0) - Date.now())) / 1000).toFixed(0);
    const latestBefore1 = em.requests.filter((r) => r.path === "/carbon-intensity/latest").length;

    // ---- 1a. throughput ----
    console.log("");
    console.log(
      `1. Cached GetCurrentIntensity (zone ${CURRENT_ZONE}, cache TTL ≈ ${ttlLeftS} s) vs empty RPC (grpc.health.v1.Health/Check)`,
    );
    console.log(
      `1a. Throughput: load generator in a child process, ${IN_FLIGHT} in flight over ${CONNECTIONS} connections; ` +
        `grpc = the generated client (grpc-js), http2 = raw node:http2 with the request pre-encoded; modes in rotating ${BLOCK_MS} ms blocks, ${seconds} s each`,
    );
    const gen = await LoadGenerator.start({ address, connections: CONNECTIONS, inFlight: IN_FLIGHT, zone: CURRENT_ZONE });
    cleanups.push({ name: "load generator", run: () => gen.stop() });
    const tp = await measureThroughput(gen, seconds);
    await gen.stop();
    const m = tp.modes;
    const grpcCur = m["grpc/current"];
    const rawCur = m["http2/current"];
    const rpsRatio = grpcCur.rps / m["grpc/empty"].rps;
    const rawRpsRatio = rawCur.rps / m["http2/empty"].rps;
    const tpRow = (t: Throughput): string[] => [
      t.client,
      t.kind === "current" ? "GetCurrentIntensity (cached)" : "empty (Health/Check)",
      String(t.completed),
      f(t.rps, 0),
      f(t.rps / m[`${t.client}/empty`].rps, 3),
      f(t.serverCpuPct, 1),
      f(t.serverElu, 3),
      f(t.serverCpuUsPerRequest, 1),
      f(t.clientCpuPct, 1),
      f(t.clientCpuUsPerRequest, 1),
      String(t.errors),
      String(t.uncached),
    ];
    console.log(
      table(
        [
          "client",
          "RPC",
          "completed",
          "requests/s",
          "ratio to empty",
          "server CPU % core",
          "server ELU",
          "server CPU µs/req",
          "client CPU % core",
          "client CPU µs/req",
          "errors",
          "uncached",
        ],
        MODES.map((x) => tpRow(m[`${x.client}/${x.kind}`])),
      ),
    );
    for (const t of Object.values(m)) if (t.lastError) console.log(`  last ${t.client} ${t.kind} error: ${t.lastError}`);
    const cpuPerReq = (t: Throughput): number => t.serverCpuUsPerRequest;
    const serverCapacity =
      1e6 / ((cpuPerReq(grpcCur) * grpcCur.completed + cpuPerReq(rawCur) * rawCur.completed) / (grpcCur.completed + rawCur.completed));
    const boundOf = (t: Throughput): string =>
      t.serverElu < 0.9
        ? `client-bound (server event loop busy ${f(t.serverElu * 100, 0)} %)`
        : `server-bound (event loop busy ${f(t.serverElu * 100, 0)} %)`;
    console.log(`grpc: ${boundOf(grpcCur)}; http2: ${boundOf(rawCur)}`);
    console.log(
      `server CPU per cached request ×${f(cpuPerReq(grpcCur) / cpuPerReq(m["grpc/empty"]), 2)} (grpc) / ×${f(cpuPerReq(rawCur) / cpuPerReq(m["http2/empty"]), 2)} (http2) the empty RPC's; ` +
        `≈ ${f(serverCapacity, 0)} cached requests/s per fully busy server core at that cost`,
    );

    // ---- 1b. latency ----
    console.log("");
    console.log(
      `1b. Latency, sequential from this process (${LAT_WARMUP} warm-up each, then alternating blocks of ${LAT_BLOCK}, ${seconds} s)`,
    );
    const lat = await measureLatency(pairs[0]!, CURRENT_ZONE, seconds);
    const latRow = (name: string, s: Stats): string[] => [name, String(s.n), f(s.p50), f(s.p99), f(s.mean), f(s.max)];
    console.log(
      table(
        ["RPC", "n", "p50 ms", "p99 ms", "mean ms", "max ms"],
        [latRow("GetCurrentIntensity (cached)", lat.current), latRow("empty (Health/Check)", lat.empty)],
      ),
    );
    const p50Ratio = lat.current.p50 / lat.empty.p50;
    const p99Ratio = lat.current.p99 / lat.empty.p99;
    console.log(
      `ratios to the empty RPC: p50 ${f(p50Ratio, 2)}, p99 ${f(p99Ratio, 2)} (${lat.blocks} block pairs, ${f(lat.seconds, 1)} s; uncached answers ${lat.uncached})`,
    );
    const upstreamDuring1 = em.requests.filter((r) => r.path === "/carbon-intensity/latest").length - latestBefore1;
    console.log(`upstream /carbon-intensity/latest calls during section 1 (cache refreshes): ${upstreamDuring1}`);

    // ---- 2. cold burst ----
    console.log("");
    console.log(
      `2. ${COLD_REQUESTS} concurrent cold GetCurrentIntensity (zone ${COLD_ZONE}, never asked before), all issued at once over ${CONNECTIONS} connections`,
    );
    const cold = await coldBurst(pairs, em, COLD_ZONE);
    console.log(
      table(
        ["requests", "upstream /latest calls", "all zones", "elapsed ms", "errors", "answered from cache", "distinct values"],
        [
          [
            String(cold.requests),
            String(cold.upstreamLatestCalls),
            String(cold.upstreamLatestCallsAllZones),
            f(cold.ms, 1),
            String(cold.errors),
            String(cold.cachedAnswers),
            String(cold.distinctValues),
          ],
        ],
      ),
    );
    if (cold.lastError) console.log(`  last error: ${cold.lastError}`);

    // ---- 3a. pure computeEmissions ----
    console.log("");
    const segments = fleetSegments(emissionsFromMs);
    const points = hourlyPoints(EMISSIONS_ZONE, emissionsFromMs);
    console.log(
      `3. ComputeEmissions: ${DAYS} days × ${DEVICES} devices = ${segments.length} hourly segments against ${points.length} hourly points`,
    );
    let pureResult: EmissionsResult | undefined;
    const pure = timeRuns(PURE_RUNS, PURE_WARMUP, () => (pureResult = computeEmissions(segments, points, { gapPolicy: "fill" })));

    // ---- 3b. the RPC ----
    const request: ComputeEmissionsRequest = {
      location: { zone: EMISSIONS_ZONE },
      emissionFactor: 0,
      gapPolicy: 0,
      provider: "",
      segments: segments.map((s) => ({ start: new Date(s.startMs), end: new Date(s.endMs), energyJ: s.energyJ, device: s.device })),
    };
    const pastRange = (): number => em.requests.filter((r) => r.path === "/carbon-intensity/past-range").length;
    const client = pairs[0]!.intensity;
    const emit = (): Promise<ComputeEmissionsResponse> =>
      unaryCall<ComputeEmissionsRequest, ComputeEmissionsResponse>(client, client.computeEmissions, request);
    const pr0 = pastRange();
    const tCold = performance.now();
    const coldResponse = await emit();
    const rpcColdMs = performance.now() - tCold;
    const coldPastRange = pastRange() - pr0;
    const cachedMs: number[] = [];
    let lastResponse = coldResponse;
    for (let i = 0; i < RPC_CACHED_RUNS; i++) {
      const t0 = performance.now();
      lastResponse = await emit();
      cachedMs.push(performance.now() - t0);
    }
    const rpcCached = stats(cachedMs);
    const cachedPastRange = pastRange() - pr0 - coldPastRange;
    const codec = measureCodec(request, lastResponse);
    const pureTotal = pureResult!.totalCarbonG;
    const relDiff = Math.abs(lastResponse.totalCarbonG - pureTotal) / pureTotal;
    console.log(
      table(
        ["what", "n", "p50 ms", "p99 ms", "min ms", "max ms", "upstream past-range calls"],
        [
          ["computeEmissions (pure, in-process)", String(pure.n), f(pure.p50), f(pure.p99), f(pure.min), f(pure.max), "-"],
          ["ComputeEmissions RPC, first call (cold)", "1", f(rpcColdMs), f(rpcColdMs), f(rpcColdMs), f(rpcColdMs), String(coldPastRange)],
          [
            "ComputeEmissions RPC, history cached",
            String(rpcCached.n),
            f(rpcCached.p50),
            f(rpcCached.p99),
            f(Math.min(...cachedMs)),
            f(rpcCached.max),
            String(cachedPastRange),
          ],
        ],
      ),
    );
    console.log(
      `protobuf (ts-proto, this process, median of ${CODEC_RUNS}): request ${f(codec.requestBytes / 1024, 0)} KiB encode ${f(codec.requestEncodeMs, 2)} ms / decode ${f(codec.requestDecodeMs, 2)} ms; ` +
        `response ${f(codec.responseBytes / 1024, 0)} KiB (${lastResponse.periods.length} periods) encode ${f(codec.responseEncodeMs, 2)} ms / decode ${f(codec.responseDecodeMs, 2)} ms`,
    );
    const codecMs = codec.requestEncodeMs + codec.requestDecodeMs + codec.responseEncodeMs + codec.responseDecodeMs;
    console.log(
      `pure compute ${f(pure.p50, 2)} ms + the four codec steps ${f(codecMs, 2)} ms = ${f(pure.p50 + codecMs, 2)} ms of the cached RPC's p50 ${f(rpcCached.p50, 2)} ms ` +
        `(the rest: segment mapping, min/max, cache lookup, periods → proto, HTTP/2 transfer, GC)`,
    );
    console.log(
      `check: RPC total ${f(lastResponse.totalCarbonG, 3)} g vs pure ${f(pureTotal, 3)} g (relative difference ${relDiff.toExponential(1)}); cold and cached RPC totals equal: ${coldResponse.totalCarbonG === lastResponse.totalCarbonG}`,
    );

    // ---- targets ----
    const t = {
      throughput: grpcCur.rps >= TARGET_RPS && grpcCur.errors === 0,
      upstreamOnce: cold.upstreamLatestCalls === TARGET_UPSTREAM && cold.errors === 0,
      pureEmissions: pure.p50 < TARGET_PURE_MS,
      rpcMatchesPure: relDiff < 1e-9,
    };
    console.log("");
    console.log("Targets");
    console.log(
      `  cached GetCurrentIntensity ≥ ${TARGET_RPS} requests/s on 2 cores (${IN_FLIGHT} in flight, generated client): ${f(grpcCur.rps, 0)}/s ` +
        `(×${f(rpsRatio, 3)} the empty RPC's ${f(m["grpc/empty"].rps, 0)}/s; ${grpcCur.errors} errors; ` +
        `load generator ${f(grpcCur.clientCpuPct, 0)} % of a core, server event loop busy ${f(grpcCur.serverElu * 100, 0)} %) -> ${verdict(t.throughput)}`,
    );
    console.log(
      `  (info) the same with the raw HTTP/2 client (a cheaper load generator, more of the 2 cores left to the server): ${f(rawCur.rps, 0)}/s ` +
        `(×${f(rawRpsRatio, 3)} the empty RPC's ${f(m["http2/empty"].rps, 0)}/s; server event loop busy ${f(rawCur.serverElu * 100, 0)} %) -> ` +
        `${rawCur.rps >= TARGET_RPS && rawCur.errors === 0 ? "≥" : "<"} ${TARGET_RPS}`,
    );
    console.log(
      `  (reported) cached GetCurrentIntensity p99 ${f(lat.current.p99)} ms, p50 ${f(lat.current.p50)} ms; ratios to the empty RPC p50 ×${f(p50Ratio, 2)}, p99 ×${f(p99Ratio, 2)}`,
    );
    console.log(
      `  ${COLD_REQUESTS} concurrent cold requests -> exactly ${TARGET_UPSTREAM} upstream /latest call: ${cold.upstreamLatestCalls} (${cold.errors} errors) -> ${verdict(t.upstreamOnce)}`,
    );
    console.log(
      `  computeEmissions (pure) ${segments.length} segments × ${points.length} points, median < ${TARGET_PURE_MS} ms: ${f(pure.p50)} ms -> ${verdict(t.pureEmissions)}`,
    );
    console.log(
      `  (reported) ComputeEmissions RPC end to end: cold ${f(rpcColdMs, 1)} ms (${coldPastRange} past-range calls), cached p50 ${f(rpcCached.p50, 1)} ms`,
    );
    console.log(`  (check) RPC total equals the pure function's: ${verdict(t.rpcMatchesPure)}`);
    console.log(`total run time ${f((performance.now() - started) / 1000, 1)} s`);

    const result = {
      machine: { cpus: cpus.length, model: cpus[0]?.model, node: process.version, pinning },
      secondsPerPhase: seconds,
      cached: {
        zone: CURRENT_ZONE,
        throughput: {
          inFlight: IN_FLIGHT,
          connections: CONNECTIONS,
          blockMs: BLOCK_MS,
          rounds: tp.rounds,
          modes: m,
          ratio: rpsRatio,
          http2Ratio: rawRpsRatio,
          serverCapacityPerCore: serverCapacity,
        },
        latency: { ...lat, ratios: { p50: p50Ratio, p99: p99Ratio } },
        upstreamLatestCalls: upstreamDuring1,
      },
      cold: { zone: COLD_ZONE, ...cold },
      emissions: {
        days: DAYS,
        devices: DEVICES,
        segments: segments.length,
        points: points.length,
        pure,
        rpc: {
          coldMs: rpcColdMs,
          coldPastRangeCalls: coldPastRange,
          cached: rpcCached,
          cachedPastRangeCalls: cachedPastRange,
          codec,
          periods: lastResponse.periods.length,
        },
        totalCarbonG: { pure: pureTotal, rpc: lastResponse.totalCarbonG, relDiff },
      },
      targets: { rpsMin: TARGET_RPS, upstreamCalls: TARGET_UPSTREAM, pureMsMax: TARGET_PURE_MS, ...t },
    };
    console.log("");
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
else await runBenchmark("bench/intensity.ts", main);
