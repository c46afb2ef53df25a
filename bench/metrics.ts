/**
 * Metrics benchmark: the real agent in-process over 8 fake H100s (fake NVML) and the fake RAPL tree.
 *
 *   2. One scrape with 10,000 open windows: the server time of building the /metrics answer
 *      (registry.metrics(), what the HTTP handler awaits), and the whole GET over loopback for reference.
 *      Target: median < 2 ms.
 *   1. Begin+End latency with metrics on (CARBONMON_AGENT_METRICS_LISTEN=127.0.0.1:0: handlers wrapped,
 *      counters and histograms recorded) against off (empty: the handlers as they are), two agents side by
 *      side, in alternating blocks of 50 pairs in one run; each adjacent on/off pair of blocks gives a ratio
 *      of their medians (a busy machine's drift cancels within a pair). Target: median ratio <= 1.05.
 *   3. The wrapper's own cost: an instrumented handler against the bare one on a stub call, ns per call.
 *
 *   npm run bench -- --seconds 3          (or: node --max-semi-space-size=32 --import tsx bench/metrics.ts)
 */
import os from "node:os";
import type { Client, ServiceError } from "@grpc/grpc-js";
import { Registry } from "prom-client";
import { silentLogger } from "../server/shared/log.js";
import { grpcMetrics, instrumentRegistration } from "../server/shared/metrics/grpc.js";
import type { ServiceRegistration } from "../server/shared/serve.js";
import { fakeNvml, type FakeGpu } from "../test/helpers/fake-nvml.js";
import { startTestAgent, type TestAgent } from "../test/helpers/grpc.js";
import { intelTwoSocketTree } from "../test/helpers/powercap.js";
import { f, GPU_COUNT, parseSeconds, PROFILE, runBenchmark, SAMPLING_PERIOD_MS, stats, table, verdict } from "./lib.js";

const OPEN_WINDOWS = 10_000;
const SCRAPES = 300;
const BLOCK = 50;

type Callback<Res> = (err: ServiceError | null, res: Res) => void;

function timed<Req, Res>(client: Client, method: (req: Req, cb: Callback<Res>) => unknown, request: Req): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    method.call(client, request, (err: ServiceError | null) => (err ? reject(err) : resolve(performance.now() - t0)));
  });
}

const beginRequest = (key: string) => ({ key, gpuIndices: [], cpuIndices: [], labels: {}, skipGpus: false, skipCpus: false });

async function pool(count: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await fn(next++);
    }),
  );
}

let keySeq = 0;

/** BLOCK Begin+End pairs in sequence; returns each pair's latency, ms. */
async function pairs(agent: TestAgent, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const key = `bench-${keySeq++}`;
    const b = await timed(agent.client, agent.client.beginWindow, beginRequest(key));
    const e = await timed(agent.client, agent.client.endWindow, { key, waitForCounterUpdate: false });
    out.push(b + e);
  }
  return out;
}

const WRAP_CALLS = 1_000_000;

/** ns per call of a stub unary handler, bare and wrapped by instrumentRegistration (metrics on, log silent). */
function wrapperCostNs(): { bare: number; wrapped: number } {
  const response = {};
  const handler = (_call: unknown, cb: (err: null, v: unknown) => void) => cb(null, response);
  const definition = {
    beginWindow: { path: "/carbonmon.agent.v1.EnergyMonitor/BeginWindow", requestStream: false, responseStream: false },
  };
  const registration = {
    name: "carbonmon.agent.v1.EnergyMonitor",
    definition,
    implementation: { beginWindow: handler },
  } as unknown as ServiceRegistration;
  const wrapped = instrumentRegistration(registration, { metrics: grpcMetrics(new Registry()), log: silentLogger() }).implementation
    .beginWindow as typeof handler;
  const call = { request: { key: "k" }, getPeer: () => "127.0.0.1:1" };
  let sink = 0;
  const done = () => void sink++;
  const run = (h: typeof handler): number => {
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      for (let i = 0; i < WRAP_CALLS; i++) h(call, done);
      best = Math.min(best, ((performance.now() - t0) * 1e6) / WRAP_CALLS);
    }
    return best;
  };
  const result = { bare: run(handler), wrapped: run(wrapped) };
  if (sink !== 10 * WRAP_CALLS) throw new Error("stub calls lost");
  return result;
}

async function main(): Promise<number> {
  const seconds = parseSeconds();
  const cpus = os.cpus();
  console.log("carbonmon metrics benchmark");
  console.log(`machine: ${cpus.length} CPUs, ${cpus[0]?.model ?? "unknown model"}; node ${process.version}`);
  const gpus: FakeGpu[] = Array.from({ length: GPU_COUNT }, (_, i) => ({
    name: "NVIDIA H100 80GB HBM3",
    uuid: `GPU-bench-${i}`,
    powerLimitW: 700,
    profile: PROFILE,
  }));
  const fake = fakeNvml({ gpus });
  const tree = intelTwoSocketTree();
  const env = {
    CARBONMON_NVML_LIBRARY: fake.libraryPath,
    CARBONMON_POWERCAP_ROOT: tree.root,
    CARBONMON_LOG_LEVEL: "silent",
    CARBONMON_SAMPLING_PERIOD_MS: String(SAMPLING_PERIOD_MS),
  };
  const agents: TestAgent[] = [];
  try {
    const on = await startTestAgent({ ...env, CARBONMON_AGENT_METRICS_LISTEN: "127.0.0.1:0" });
    agents.push(on);
    const off = await startTestAgent({ ...env, CARBONMON_AGENT_METRICS_LISTEN: "" });
    agents.push(off);
    if (!on.metrics || !on.metricsAddress || off.metrics) throw new Error("metrics on/off not as configured");
    console.log(
      `setup: ${GPU_COUNT} fake H100s + RAPL (two sockets), sampling ${SAMPLING_PERIOD_MS} ms; agents: metrics on ${on.running.address} (/metrics on ${on.metricsAddress}), off ${off.running.address}`,
    );

    // ---- 1: Begin+End with metrics on vs off ----
    await pairs(on, BLOCK);
    await pairs(off, BLOCK); // warm-up both
    const lat = { on: [] as number[], off: [] as number[] };
    const blockRatios: number[] = [];
    const until = performance.now() + seconds * 4000;
    let blocks = 0;
    while (performance.now() < until || blocks < 10) {
      // Alternate which goes first, so that neither always follows the other; each pair of blocks gives a ratio.
      const order = blocks % 2 === 0 ? (["on", "off"] as const) : (["off", "on"] as const);
      const medians: Record<string, number> = {};
      for (const which of order) {
        const block = await pairs(which === "on" ? on : off, BLOCK);
        lat[which].push(...block);
        medians[which] = stats(block).p50;
      }
      blockRatios.push(medians.on! / medians.off!);
      blocks++;
    }
    const a = stats(lat.on);
    const b = stats(lat.off);
    const ratio = stats(blockRatios).p50;
    console.log(
      `\n1. Begin+End latency, metrics on vs off (${blocks} alternating blocks of ${BLOCK} pairs each; both agents fresh, no window left open)`,
    );
    console.log(
      table(
        ["ms per Begin+End", "n", "p50", "p99", "mean"],
        [
          ["metrics on", String(a.n), f(a.p50), f(a.p99), f(a.mean)],
          ["metrics off", String(b.n), f(b.p50), f(b.p99), f(b.mean)],
        ],
      ),
    );
    console.log(
      `ratio on/off: median of the ${blocks} block-pair ratios ${f(ratio)}; of the overall p50s ${f(a.p50 / b.p50)}; of the means ${f(a.mean / b.mean)}`,
    );
    const latencyOk = ratio <= 1.05;
    console.log(`target: on/off <= 1.05 (median block-pair ratio): ${f(ratio)} -- ${verdict(latencyOk)}`);
    // ---- 2: scrape with 10,000 open windows ----
    // The other agent's sampler would share the event loop (the event-loop-lag collector waits one turn).
    await off.close();
    agents.splice(agents.indexOf(off), 1);
    await pool(OPEN_WINDOWS, 64, (i) => timed(on.client, on.client.beginWindow, beginRequest(`open-${i}`)));
    if (on.context.windows.openCount !== OPEN_WINDOWS) throw new Error(`${on.context.windows.openCount} windows open`);
    for (let i = 0; i < 20; i++) await on.metrics.metrics(); // warm-up
    const server: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < SCRAPES; i++) {
      const t0 = performance.now();
      await on.metrics.metrics();
      server.push(performance.now() - t0);
    }
    const cpu = process.cpuUsage(cpu0);
    // Process CPU time over the scrapes: the scrape's own work plus whatever else ran (sampler, NVML worker).
    const cpuMsPerScrape = (cpu.user + cpu.system) / 1000 / SCRAPES;
    const http: number[] = [];
    let bytes = 0;
    for (let i = 0; i < SCRAPES; i++) {
      const t0 = performance.now();
      bytes = (await (await fetch(`http://${on.metricsAddress}/metrics`)).text()).length;
      http.push(performance.now() - t0);
    }
    const s = stats(server);
    const h = stats(http);
    console.log(
      `\n2. one scrape, ${GPU_COUNT} GPUs, ${on.context.windows.openCount} open windows (${SCRAPES} scrapes, ${bytes} bytes each)`,
    );
    console.log(
      table(
        ["ms", "p50", "p99", "mean", "max"],
        [
          ["server time (registry.metrics())", f(s.p50), f(s.p99), f(s.mean), f(s.max)],
          ["GET /metrics over loopback", f(h.p50), f(h.p99), f(h.mean), f(h.max)],
        ],
      ),
    );
    console.log(
      `process CPU time per scrape (all threads, the sampler included): ${f(cpuMsPerScrape)} ms; load average ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")} on ${cpus.length} CPUs`,
    );
    const scrapeOk = s.p50 < 2;
    console.log(`target: server time median < 2 ms: ${f(s.p50)} ms -- ${verdict(scrapeOk)}`);

    // ---- 3: the wrapper's own cost ----
    const perCallNs = wrapperCostNs();
    console.log(
      `\n3. the wrapper's own cost (a stub unary handler, ${WRAP_CALLS.toLocaleString("en")} calls each, best of 5): bare ${f(perCallNs.bare, 0)} ns, instrumented ${f(perCallNs.wrapped, 0)} ns per call; +${f(perCallNs.wrapped - perCallNs.bare, 0)} ns = ${f((((perCallNs.wrapped - perCallNs.bare) * 2) / (b.p50 * 1e6)) * 100, 2)} % of a Begin+End (two RPCs) at the p50 above`,
    );
    return scrapeOk && latencyOk ? 0 : 1;
  } catch (err) {
    console.error((err as Error).stack ?? String(err));
    return 1;
  } finally {
    for (const agent of agents) await agent.close();
    fake.cleanup();
    tree.cleanup();
  }
}

await runBenchmark("bench/metrics.ts", main);
