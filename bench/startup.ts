/**
 * What the installed carbonmon costs before it does anything: both run from the compiled dist/ (as the
 * package's bin does), each in its own process, against a baseline measured in the same run.
 *   1. `carbonmon --version` against `node -e 0`: alternating repetitions, medians and their ratio.
 *      Target: at most 2x.
 *   2. The RSS of an idle agent (no window, no stream) with 8 fake GPUs and a fake RAPL tree, sampled
 *      while it idles, against an idle bare `node` process. Target: under 100 MB.
 *
 *   npm run build && node --import tsx bench/startup.ts [--seconds N]    (or through npm run bench)
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { fakeNvml, type FakeGpu } from "../test/helpers/fake-nvml.js";
import { intelTwoSocketTree } from "../test/helpers/powercap.js";
import { f, GPU_COUNT, parseSeconds, PROFILE, runBenchmark, SAMPLING_PERIOD_MS, SERVICE_NODE_FLAGS, stats, table, verdict } from "./lib.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "dist", "bin", "carbonmon.js");
const TARGET_VERSION_RATIO = 2;
const TARGET_IDLE_CPU_PCT = 1;
const TARGET_RSS_MB = 100;
const MB = 1e6;

/** Wall time of one process from spawn to exit, ms; throws if it fails. */
function timeRun(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, NODE_OPTIONS: "" } });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(performance.now() - started) : reject(new Error(`${args.join(" ")}: exit ${code}: ${err}`)),
    );
  });
}

/** A process's resident set, bytes (Linux /proc; elsewhere ps). */
/** CPU seconds (user + system) a process has used so far, from /proc (undefined off Linux). */
function cpuSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S; // utime, stime (fields 14 and 15)
  } catch {
    return undefined;
  }
}
/** USER_HZ: 100 on every Linux the agent runs on. */
const CLOCK_TICKS_PER_S = 100;

function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall through
  }
  return Number(execFileSync("ps", ["-o", "rss=", "-p", String(pid)], { encoding: "utf8" }).trim()) * 1024;
}

/** Newest modification time under dir of files ending in ext, ms. */
function newest(dir: string, ext: string): number {
  let max = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith(ext)) max = Math.max(max, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return max;
}

/** Starts `node <args>`, waits until `ready` matches its stderr, samples its RSS every 250 ms for `seconds`. */
async function idleRss(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp | undefined,
  settleMs: number,
  seconds: number,
): Promise<{ rss: number[]; cpuPct: number | undefined }> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...env, NODE_OPTIONS: "" } });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    let err = "";
    await new Promise<void>((resolve, reject) => {
      if (!ready) return resolve();
      child.stderr.on("data", (d: Buffer) => {
        err += d;
        if (ready.test(err)) resolve();
      });
      child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}: ${err}`)));
    });
    await sleep(settleMs);
    const samples: number[] = [];
    const [cpu0, t0] = [cpuSeconds(child.pid!), performance.now()];
    const until = t0 + seconds * 1000;
    while (performance.now() < until) {
      samples.push(rssBytes(child.pid!));
      await sleep(250);
    }
    const cpu1 = cpuSeconds(child.pid!);
    const cpuPct = cpu0 === undefined || cpu1 === undefined ? undefined : ((cpu1 - cpu0) / ((performance.now() - t0) / 1000)) * 100;
    return { rss: samples, cpuPct };
  } finally {
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(5000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}

async function main(): Promise<number> {
  const seconds = parseSeconds();
  const cpus = os.cpus();
  console.log("carbonmon startup benchmark (the compiled dist/, as installed)");
  console.log(
    `machine: ${cpus.length} CPUs, ${cpus[0]?.model ?? "unknown model"}; node ${process.version}; ${os.platform()} ${os.release()}; load ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
  if (!existsSync(BIN)) {
    console.error("dist/bin/carbonmon.js is missing: run `npm run build` first (npm ci runs it)");
    return 1;
  }
  const sources = Math.max(...["server", "client", "bin", "proto/gen"].map((d) => newest(join(ROOT, d), ".ts")));
  if (sources > newest(join(ROOT, "dist"), ".js"))
    console.log("WARNING: sources are newer than dist/: run `npm run build` to measure them");

  // ---- 1. carbonmon --version against node -e 0 ----
  const reps = Math.max(6, Math.round(seconds * 2));
  const baseline: number[] = [];
  const version: number[] = [];
  const versionArgs = [...SERVICE_NODE_FLAGS, BIN, "--version"];
  await timeRun(["-e", "0"]); // warm the file cache for both
  await timeRun(versionArgs);
  for (let i = 0; i < reps; i++) {
    // Alternating, and alternating which goes first: background load hits both alike.
    const pair = i % 2 === 0 ? [baseline, version] : [version, baseline];
    for (const into of pair) into.push(await timeRun(into === baseline ? ["-e", "0"] : versionArgs));
  }
  const b = stats(baseline);
  const v = stats(version);
  const ratio = v.p50 / b.p50;
  console.log(`\n1. process start to exit, ${reps} alternating repetitions each, ms`);
  console.log(
    table(
      ["command", "median", "mean", "max", "ratio (median)"],
      [
        ["node -e 0", f(b.p50, 1), f(b.mean, 1), f(b.max, 1), "1.00"],
        [`node ${SERVICE_NODE_FLAGS.join(" ")} dist/bin/carbonmon.js --version`, f(v.p50, 1), f(v.mean, 1), f(v.max, 1), f(ratio, 2)],
      ],
    ),
  );

  // ---- 2. idle RSS ----
  const gpus: FakeGpu[] = Array.from({ length: GPU_COUNT }, (_, i) => ({
    name: "NVIDIA H100 80GB HBM3",
    uuid: `GPU-bench-${i}`,
    powerLimitW: 700,
    profile: PROFILE,
  }));
  const fake = fakeNvml({ gpus });
  const tree = intelTwoSocketTree();
  const data = mkdtempSync(join(os.tmpdir(), "carbonmon-bench-startup-"));
  let agentIdle: Awaited<ReturnType<typeof idleRss>>;
  let bareIdle: Awaited<ReturnType<typeof idleRss>>;
  try {
    const env = {
      ...process.env,
      CARBONMON_NVML_LIBRARY: fake.libraryPath,
      CARBONMON_POWERCAP_ROOT: tree.root,
      CARBONMON_DATA_DIR: data,
      CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
      CARBONMON_SAMPLING_PERIOD_MS: String(SAMPLING_PERIOD_MS),
      CARBONMON_LOG_LEVEL: "info",
    };
    const settleMs = 20_000; // past start-up (update grids learnt, code compiled): an idle agent as it stays
    agentIdle = await idleRss([...SERVICE_NODE_FLAGS, BIN, "agent"], env, /"msg":"listening"/, settleMs, Math.max(seconds, 10));
    bareIdle = await idleRss(
      [...SERVICE_NODE_FLAGS, "-e", "setInterval(() => {}, 1000)"],
      process.env,
      undefined,
      settleMs,
      Math.min(seconds, 2),
    );
  } finally {
    fake.cleanup();
    tree.cleanup();
    rmSync(data, { recursive: true, force: true });
  }
  const a = stats(agentIdle.rss);
  const n = stats(bareIdle.rss);
  console.log(
    `\n2. idle RSS (${GPU_COUNT} fake GPUs + RAPL, sampling every ${SAMPLING_PERIOD_MS} ms; no window, no stream), sampled every 250 ms after 20 s, MB`,
  );
  console.log(
    table(
      ["process", "samples", "median", "max", "ratio (max)"],
      [
        ["node (idle, bare)", String(n.n), f(n.p50 / MB, 1), f(n.max / MB, 1), "1.00"],
        [`carbonmon agent (dist)`, String(a.n), f(a.p50 / MB, 1), f(a.max / MB, 1), f(a.max / n.max, 2)],
      ],
    ),
  );

  console.log(
    `\n3. idle CPU of the same agent over ${a.n / 4} s (its own process, from /proc: no client or benchmark code in it): ${
      agentIdle.cpuPct === undefined ? "n/a (not Linux)" : `${f(agentIdle.cpuPct, 2)} % of a core`
    }; a bare idle node ${bareIdle.cpuPct === undefined ? "n/a" : `${f(bareIdle.cpuPct, 2)} %`}`,
  );

  const versionOk = ratio <= TARGET_VERSION_RATIO;
  const rssOk = a.max < TARGET_RSS_MB * MB;
  const idleCpuOk = agentIdle.cpuPct !== undefined && agentIdle.cpuPct < TARGET_IDLE_CPU_PCT;
  console.log("\ntargets");
  console.log(`  carbonmon --version at most ${TARGET_VERSION_RATIO}x node -e 0: x${f(ratio, 2)} -> ${verdict(versionOk)}`);
  console.log(
    `  idle agent with ${GPU_COUNT} GPUs under ${TARGET_RSS_MB} MB RSS: max ${f(a.max / MB, 1)} MB (${f(a.max / 2 ** 20, 1)} MiB) -> ${verdict(rssOk)}`,
  );
  console.log(
    `  idle agent with ${GPU_COUNT} GPUs under ${TARGET_IDLE_CPU_PCT} % of a core: ${agentIdle.cpuPct === undefined ? "n/a" : f(agentIdle.cpuPct, 2)} % -> ${verdict(idleCpuOk)}`,
  );
  return 0;
}

await runBenchmark("bench/startup.ts", main);
