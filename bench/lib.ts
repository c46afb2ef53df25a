/** What the benchmarks share: arguments, statistics, tables, batch-aligned rate marks, a raw unary gRPC call. */
import type http2 from "node:http2";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { parseArgs } from "node:util";
import type { NvmlSource } from "../server/agent/devices/nvml.js";
import type { Sampler } from "../server/agent/energy/sampler.js";

/**
 * The V8 flags the services run with (bin/carbonmon.js's shebang, the Docker image's NODE_OPTIONS): a
 * larger young generation halves the scavenges under load. bench/run.ts starts every benchmark with them.
 */
export const SERVICE_NODE_FLAGS = ["--max-semi-space-size=32"];

/** The fleet every agent benchmark simulates: 8 H100-like GPUs alternating 700 W and 80 W, default period. */
export const GPU_COUNT = 8;
export const SAMPLING_PERIOD_MS = 100;
export const PROFILE = [
  { powerW: 700, ms: 500 },
  { powerW: 80, ms: 500 },
];

/** --seconds N (default 5); strict: false, so that bench/run.ts can pass one argv to every benchmark. */
export function parseSeconds(): number {
  const { values } = parseArgs({ options: { seconds: { type: "string" } }, strict: false, allowPositionals: true });
  const raw = values.seconds;
  if (raw === undefined || raw === true) return 5;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    console.error(`--seconds must be a positive number, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return seconds;
}

export interface Stats {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  max: number;
}

export function stats(values: readonly number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const at = (p: number): number => (n === 0 ? NaN : sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]!);
  return { n, p50: at(50), p99: at(99), mean: n === 0 ? NaN : sorted.reduce((a, b) => a + b, 0) / n, max: n === 0 ? NaN : sorted[n - 1]! };
}

export const f = (x: number, digits = 3): string => (Number.isFinite(x) ? x.toFixed(digits) : String(x));
export const verdict = (ok: boolean): string => (ok ? "MET" : "NOT MET");

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/**
 * Resolves on the first sampler update that carries a new NVML batch, with mark() taken then: rates that
 * start and end on batch boundaries have no ±1-batch quantisation.
 */
export function nextNvmlBatch<T>(sampler: Sampler, nvml: NvmlSource, mark: () => T): Promise<T> {
  const before = nvml.energyReads;
  return new Promise((resolve) => {
    const off = sampler.onUpdate(() => {
      if (nvml.energyReads === before) return;
      off();
      resolve(mark());
    });
  });
}

/** Runs a benchmark's main and exits with its code; a handle left open after cleanup is reported, not waited on. */
export async function runBenchmark(name: string, main: () => Promise<number>): Promise<void> {
  const code = await main();
  process.exitCode = code;
  setTimeout(() => {
    console.error(`${name}: the process did not exit after cleanup; exiting`);
    process.exit(code);
  }, 5000).unref();
}

/** Asks a load-generating child process to stop ("stop" on its stdin), then kills it after 3 s. */
export async function stopChild(child: ChildProcessWithoutNullStreams, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.stdin.write("stop\n");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 3000).unref())]);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill("SIGKILL");
    await exited;
  }
}

/** One unary gRPC call over a raw HTTP/2 session; resolves with the response message's bytes. */
export function rawCall(session: http2.ClientHttp2Session, path: string, frame: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    const chunks: Buffer[] = [];
    let status: string | undefined;
    let message: string | undefined;
    const take = (h: http2.IncomingHttpHeaders): void => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) message = String(h["grpc-message"]);
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", reject);
    stream.on("close", () => {
      if (status === "0") resolve(Buffer.concat(chunks).subarray(5));
      else
        reject(
          new Error(
            `grpc-status ${status ?? "missing"}${message ? `: ${decodeURIComponent(message)}` : ""} (HTTP/2 close code ${stream.rstCode})`,
          ),
        );
    });
    stream.end(frame);
  });
}

/**
 * A CPU profile of this process from now until stop(), written where BENCH_CPU_PROFILE names (a
 * .cpuprofile for Chrome DevTools or `node --cpu-prof`'s readers); nothing when it is unset.
 */
export async function profileIfAsked(): Promise<{ stop(): Promise<void> }> {
  const path = process.env.BENCH_CPU_PROFILE;
  if (!path) return { stop: async () => undefined };
  const { Session } = await import("node:inspector/promises");
  const { writeFileSync } = await import("node:fs");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  return {
    stop: async () => {
      const { profile } = await session.post("Profiler.stop");
      writeFileSync(path, JSON.stringify(profile));
      session.disconnect();
      console.log(`  (CPU profile of this phase written to ${path})`);
    },
  };
}
