/**
 * The intensity service as a fleet sees it: 3 replicas (separate `carbonmon intensity` processes) on one
 * PostgreSQL (a throwaway initdb/pg_ctl cluster, test/helpers/postgres.ts), an imitation ElectricityMaps
 * upstream, and traffic as from 1,000 agents: each ends windows (ComputeEmissions for the window's pieces,
 * one per GPU and intensity hour) and reads the current intensity (cached). Every agent retries on the
 * next replica when one is unavailable, as the agent's repricing does.
 *
 *   node --import tsx bench/fleet.ts --seconds 5
 *
 * Phases, each --seconds long: 1 replica (the baseline), 3 replicas, and 3 replicas with one killed
 * (SIGKILL) halfway through. Reported: completed requests/s and p50/p99 latency per kind, the ratio of
 * 3 replicas to 1, and that no request was lost (every one eventually answered: after UNAVAILABLE by
 * another replica, after "no intensity yet" or a spent budget when asked again). The load generator, the
 * upstream imitation and PostgreSQL share the machine with the replicas: on a machine with few cores the
 * replicas compete with them for CPU, and the ratio says so.
 */
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import {
  CarbonIntensityClient,
  type ComputeEmissionsRequest,
  type ComputeEmissionsResponse,
  type IntensityPoint,
  type IntensityRequest,
} from "../proto/gen/carbonmon/intensity/v1/intensity.js";
import { start, until } from "../test/bin/cli-process.js";
import { FAKE_EM_TOKEN, recordedHistory, startFakeElectricityMaps } from "../test/helpers/fake-electricitymaps.js";
import { tempDataDir } from "../test/helpers/grpc.js";
import { POSTGRES_AVAILABLE, startPostgres } from "../test/helpers/postgres.js";
import { f, parseSeconds, runBenchmark, SERVICE_NODE_FLAGS, stats, table } from "./lib.js";

const HOUR_MS = 3_600_000;
const ZONE = "US-MIDW-MISO";
const AGENTS = 1000;
/** gRPC channels per replica shared by the simulated agents (1,000 channels in one process would measure the client). */
const CHANNELS_PER_REPLICA = 8;
/** Each simulated agent ends a window, then reads the current intensity this many times (dashboards, WatchIntensity-less clients). */
const READS_PER_WINDOW = 2;
const GPUS_PER_AGENT = 8;

interface Replica {
  address: string;
  child: ReturnType<typeof start>;
  channels: CarbonIntensityClient[];
  alive: boolean;
}

interface PhaseResult {
  name: string;
  seconds: number;
  emissions: number[];
  current: number[];
  /** Answered by another replica after UNAVAILABLE. */
  retried: number;
  /** Answered only when asked again later (the agent keeps such grams pending and asks again). */
  deferred: number;
  /** Never answered. */
  lost: number;
  errors: string[];
}

/** What the agent's repricing asks again later: no intensity yet, or the providers' budgets spent. */
const LATER = new Set<number>([status.FAILED_PRECONDITION, status.RESOURCE_EXHAUSTED]);
const LATER_DELAY_MS = 250;
const LATER_TRIES = 40;

const call = <Req, Res>(
  client: CarbonIntensityClient,
  method: (r: Req, cb: (e: ServiceError | null, r: Res) => void) => unknown,
  req: Req,
) => new Promise<Res>((resolve, reject) => method.call(client, req, (e: ServiceError | null, r: Res) => (e ? reject(e) : resolve(r))));

async function startReplica(env: Record<string, string>): Promise<Replica> {
  const data = tempDataDir();
  const child = start(["intensity"], {
    ...env,
    CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
    CARBONMON_DATA_DIR: data.dir,
    CARBONMON_LOG_LEVEL: "info",
    NODE_OPTIONS: SERVICE_NODE_FLAGS.join(" "),
  });
  child.on("exit", () => data.cleanup());
  const out = await until(child, (o) => /"msg":"listening"/.test(o.stderr), 60_000);
  const address = (JSON.parse(out.stderr.split("\n").find((l) => l.includes('"msg":"listening"'))!) as { address: string }).address;
  const channels = Array.from(
    { length: CHANNELS_PER_REPLICA },
    (_, i) => new CarbonIntensityClient(address, credentials.createInsecure(), { "grpc.channel_id": i } as object),
  );
  return { address, child, channels, alive: true };
}

/** One window's pieces: a GPU's energy split at the hour boundary it may cross. */
function windowRequest(agent: number, nowMs: number): ComputeEmissionsRequest {
  const durationMs = 60_000 + ((agent * 7919) % 50) * 60_000; // 1-50 min, different per agent
  const endMs = nowMs - (agent % 60) * 1000;
  const startMs = endMs - durationMs;
  const segments = [];
  for (let g = 0; g < GPUS_PER_AGENT; g++) {
    const cut = Math.min(endMs, Math.max(startMs, Math.floor(endMs / HOUR_MS) * HOUR_MS));
    for (const [a, b] of [
      [startMs, cut],
      [cut, endMs],
    ] as const)
      if (b > a) segments.push({ start: new Date(a), end: new Date(b), energyJ: ((b - a) / 1000) * 400, device: `gpu:${g}` });
  }
  return { location: { zone: ZONE }, emissionFactor: 0, allowEstimated: true, gapPolicy: 0, provider: "", segments };
}

const currentRequest: IntensityRequest = { location: { zone: ZONE }, emissionFactor: 0, provider: "", allowEstimated: true };

/** Runs the fleet's traffic for `seconds` against the live replicas; `midway` runs once halfway. */
async function phase(name: string, replicas: Replica[], seconds: number, midway?: () => void): Promise<PhaseResult> {
  const result: PhaseResult = { name, seconds, emissions: [], current: [], retried: 0, deferred: 0, lost: 0, errors: [] };
  const endAt = performance.now() + seconds * 1000;
  let midwayDone = midway === undefined;
  /**
   * Asks the agent's replica, then the next live ones on UNAVAILABLE; an answer that says "later" is asked
   * again after a pause (not counted in the latencies). Records the latency of direct answers.
   */
  const ask = async <Res>(
    agent: number,
    kind: "emissions" | "current",
    send: (c: CarbonIntensityClient) => Promise<Res>,
  ): Promise<void> => {
    const t0 = performance.now();
    let unavailable = 0;
    for (let later = 0; later < LATER_TRIES; ) {
      const live = replicas.filter((r) => r.alive);
      const replica = live[(agent + unavailable) % live.length]!;
      try {
        await send(replica.channels[agent % CHANNELS_PER_REPLICA]!);
        if (later > 0) result.deferred++;
        else result[kind].push(performance.now() - t0);
        if (unavailable > 0) result.retried++;
        return;
      } catch (err) {
        const e = err as ServiceError;
        if (e.code === status.UNAVAILABLE && unavailable < 20) {
          unavailable++;
          continue;
        }
        if (!LATER.has(e.code)) break;
        if (later === 0 && result.errors.length < 3) result.errors.push(`${kind} (asked again later): ${e.message}`);
        later++;
        await new Promise((r) => setTimeout(r, LATER_DELAY_MS));
      }
    }
    result.lost++;
  };
  const agentLoop = async (agent: number): Promise<void> => {
    while (performance.now() < endAt) {
      if (!midwayDone && performance.now() > endAt - (seconds * 1000) / 2) {
        midwayDone = true;
        midway!();
      }
      await ask(agent, "emissions", (c) =>
        call<ComputeEmissionsRequest, ComputeEmissionsResponse>(c, c.computeEmissions, windowRequest(agent, Date.now())),
      );
      for (let i = 0; i < READS_PER_WINDOW; i++)
        await ask(agent, "current", (c) => call<IntensityRequest, IntensityPoint>(c, c.getCurrentIntensity, currentRequest));
    }
  };
  await Promise.all(Array.from({ length: AGENTS }, (_, i) => agentLoop(i)));
  return result;
}

async function main(): Promise<number> {
  const seconds = parseSeconds();
  if (!POSTGRES_AVAILABLE) {
    console.log("bench/fleet.ts: skipped (no PostgreSQL 15 binaries; Debian package postgresql)");
    return 0;
  }
  const pg = await startPostgres();
  const lastHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const em = await startFakeElectricityMaps({ series: { [ZONE]: recordedHistory(lastHour) } });
  const replicas: Replica[] = [];
  try {
    const env = {
      CARBONMON_DATABASE_URL: await pg.createDatabase("fleet"),
      CARBONMON_PROVIDERS: "electricitymaps",
      ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
      CARBONMON_ELECTRICITYMAPS_URL: em.url,
    };
    for (let i = 0; i < 3; i++) replicas.push(await startReplica(env));
    // Warm: JIT, connections, the zone's history in the store (an emissions question refused by the budget
    // before any answer was stored is asked again later, as the agent does).
    const warm = await phase("warm-up", replicas, Math.min(2, seconds));
    const results = [
      await phase("1 replica", replicas.slice(0, 1), seconds),
      await phase("3 replicas", replicas, seconds),
      await phase("3 replicas, one killed halfway", replicas, seconds, () => {
        replicas[2]!.child.kill("SIGKILL");
        replicas[2]!.alive = false;
      }),
    ];
    const rows = results.map((r) => {
      const e = stats(r.emissions);
      const c = stats(r.current);
      return [
        r.name,
        f((e.n + c.n) / r.seconds, 0),
        f(e.n / r.seconds, 0),
        f(e.p50, 1),
        f(e.p99, 1),
        f(c.n / r.seconds, 0),
        f(c.p50, 1),
        f(c.p99, 1),
        String(r.retried),
        String(r.deferred),
        String(r.lost),
      ];
    });
    console.log(
      `Fleet: ${AGENTS} simulated agents (${GPUS_PER_AGENT} GPUs each; per window 1 ComputeEmissions + ${READS_PER_WINDOW} cached GetCurrentIntensity), ${seconds} s per phase, replicas on one PostgreSQL`,
    );
    console.log(
      table(
        ["phase", "req/s", "ComputeEmissions/s", "p50 ms", "p99 ms", "GetCurrent/s", "p50 ms", "p99 ms", "retried", "asked later", "lost"],
        rows,
      ),
    );
    const base = results[0]!;
    const three = results[1]!;
    const rate = (r: PhaseResult) => (r.emissions.length + r.current.length) / r.seconds;
    console.log(
      `3 replicas / 1 replica: throughput ×${f(rate(three) / rate(base), 2)}, ComputeEmissions p99 ×${f(stats(three.emissions).p99 / stats(base.emissions).p99, 2)}`,
    );
    const upstream = em.requests.length;
    console.log(
      `upstream requests over the whole run: ${upstream} (history cache keys are per window range; the global budget of 100/min bounds them, the store answers the rest)`,
    );
    const lost = results.reduce((n, r) => n + r.lost, 0) + warm.lost;
    for (const r of [warm, ...results]) for (const e of r.errors) console.log(`  ${r.name}: ${e}`);
    console.log(lost === 0 ? "no request lost (every request answered, retries included)" : `LOST ${lost} requests`);
    return lost === 0 ? 0 : 1;
  } finally {
    for (const r of replicas) {
      for (const c of r.channels) c.close();
      r.child.kill("SIGTERM");
    }
    await Promise.all(replicas.map((r) => r.child.done));
    await em.close();
    await pg.stop();
  }
}

await runBenchmark("fleet", main);
