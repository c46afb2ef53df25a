/**
 * Builds the fake libnvidia-ml.so.1 from test/fixtures/fake-nvml/fake_nvml.c with cc (once per source
 * version) and gives each test its own copy with its own configuration, so tests run concurrently without
 * sharing the library's state.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const SOURCE = fileURLToPath(new URL("../fixtures/fake-nvml/fake_nvml.c", import.meta.url));
/** MAX_SEGMENTS in fake_nvml.c: a longer profile would be cut short there. */
const MAX_PROFILE_SEGMENTS = 256;
const BUILD_DIR = fileURLToPath(new URL("../.build", import.meta.url));

export interface Segment {
  powerW: number;
  ms: number;
}

export interface FakeGpu {
  name?: string;
  uuid?: string;
  powerLimitW?: number;
  initialEnergyJ?: number;
  /** Repeating piecewise-constant power; default 80 W. */
  profile?: Segment[];
  energyCounter?: boolean;
  lostAfterMs?: number;
  resetAtMs?: number;
  gpuScopePower?: boolean;
  moduleScopePower?: boolean;
  memoryPower?: boolean;
  mig?: boolean;
}

export interface FakeNvmlConfig {
  gpus: FakeGpu[];
  init?: "ok" | "no_permission" | "driver_not_loaded";
  /** What field values' timestamps are: the read time (real drivers; default) or the update instant. */
  fieldTimestamp?: "read" | "update";
  readLatencyUs?: number;
  updateUs?: number;
  /** Time zero of every profile, epoch ms; default: a whole second, now. */
  epochMs?: number;
}

export interface FakeNvml {
  libraryPath: string;
  epochMs: number;
  config: FakeNvmlConfig;
  cleanup(): void;
}

/** Compiles the fake once per source hash; safe when several test processes do it at once. */
export function buildFakeNvml(): string {
  const source = readFileSync(SOURCE);
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 12);
  const out = join(BUILD_DIR, `fake-nvml-${hash}.so`);
  if (existsSync(out)) return out;
  mkdirSync(BUILD_DIR, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  execFileSync("cc", ["-shared", "-fPIC", "-O2", "-Wall", "-o", tmp, SOURCE, "-lpthread", "-ldl"], { stdio: "inherit" });
  renameSync(tmp, out);
  return out;
}

function configText(config: FakeNvmlConfig, epochMs: number): string {
  const lines = [`epoch_us=${Math.round(epochMs * 1000)}`, `gpus=${config.gpus.length}`, `init=${config.init ?? "ok"}`];
  if (config.fieldTimestamp !== undefined) lines.push(`field_timestamp=${config.fieldTimestamp}`);
  if (config.readLatencyUs !== undefined) lines.push(`read_latency_us=${config.readLatencyUs}`);
  if (config.updateUs !== undefined) lines.push(`update_us=${config.updateUs}`);
  config.gpus.forEach((g, i) => {
    if ((g.profile?.length ?? 0) > MAX_PROFILE_SEGMENTS)
      throw new Error(`gpu ${i}: ${g.profile!.length} profile segments, the fake holds ${MAX_PROFILE_SEGMENTS}`);
    const set = (key: string, value: unknown): void => void (value !== undefined && lines.push(`gpu${i}.${key}=${value}`));
    set("name", g.name);
    set("uuid", g.uuid);
    set("power_limit_w", g.powerLimitW);
    set("initial_energy_j", g.initialEnergyJ);
    set("profile", g.profile?.map((s) => `${s.powerW}:${s.ms}`).join(","));
    set("energy_counter", g.energyCounter === undefined ? undefined : Number(g.energyCounter));
    set("lost_after_ms", g.lostAfterMs);
    set("reset_at_ms", g.resetAtMs);
    set("gpu_scope_power", g.gpuScopePower === undefined ? undefined : Number(g.gpuScopePower));
    set("module_scope_power", g.moduleScopePower === undefined ? undefined : Number(g.moduleScopePower));
    set("memory_power", g.memoryPower === undefined ? undefined : Number(g.memoryPower));
    set("mig", g.mig === undefined ? undefined : Number(g.mig));
  });
  return `${lines.join("\n")}\n`;
}

/** A private copy of the fake library configured with `config`. */
export function fakeNvml(config: FakeNvmlConfig): FakeNvml {
  const built = buildFakeNvml();
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-nvml-"));
  const libraryPath = join(dir, "libnvidia-ml.so.1");
  copyFileSync(built, libraryPath);
  const epochMs = config.epochMs ?? Math.floor(Date.now() / 1000) * 1000;
  writeFileSync(join(dir, "fake-nvml.cfg"), configText(config, epochMs));
  return { libraryPath, epochMs, config, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The exact energy of a repeating profile between two instants (epoch ms), joules: the test's truth. */
export function profileEnergyJ(profile: readonly Segment[], epochMs: number, t0Ms: number, t1Ms: number): number {
  return energyTo(profile, t1Ms - epochMs) - energyTo(profile, t0Ms - epochMs);
}

function energyTo(profile: readonly Segment[], tMs: number): number {
  if (tMs <= 0) return 0;
  const periodMs = profile.reduce((a, s) => a + s.ms, 0);
  const perPeriodJ = profile.reduce((a, s) => a + (s.powerW * s.ms) / 1000, 0);
  const whole = Math.floor(tMs / periodMs);
  let rest = tMs - whole * periodMs;
  let energyJ = whole * perPeriodJ;
  for (const s of profile) {
    const d = Math.min(rest, s.ms);
    energyJ += (s.powerW * d) / 1000;
    rest -= d;
    if (rest <= 0) break;
  }
  return energyJ;
}

/** Power of a profile at an instant (epoch ms). */
export function profilePowerW(profile: readonly Segment[], epochMs: number, tMs: number): number {
  const periodMs = profile.reduce((a, s) => a + s.ms, 0);
  let x = (((tMs - epochMs) % periodMs) + periodMs) % periodMs;
  for (const s of profile) {
    if (x < s.ms) return s.powerW;
    x -= s.ms;
  }
  return profile[profile.length - 1]!.powerW;
}

/**
 * Wall minus agent clock (the fake stamps with the wall clock, the agent measures on its monotonic one),
 * exact to the tick of Date.now(): read the agent clock the moment Date.now() ticks. A preemption between
 * the two reads makes the difference smaller, never larger (tests run beside others), so the largest of
 * several is kept.
 */
export function wallOffsetMs(samples = 15): number {
  let best = -Infinity;
  for (let i = 0; i < samples; i++) {
    const start = Date.now();
    let tick = start;
    while (tick === start) tick = Date.now();
    best = Math.max(best, tick - (performance.timeOrigin + performance.now()));
  }
  return best;
}
