/**
 * Fake powercap trees, built in a temporary directory by code. The layout mirrors /sys/class/powercap:
 * subzones nest inside their package, the root also holds a link for every subzone and an `intel-rapl`
 * control-type directory, so discovery must ignore everything that is not a top-level zone.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The usual Intel max_energy_range_uj (≈ 262 kJ). */
export const DEFAULT_RANGE_UJ = 262_143_328_850;

export interface ZoneSpec {
  /** Relative to the root, e.g. "intel-rapl:0/intel-rapl:0:1". */
  path: string;
  name: string;
  energyUj: number;
  maxEnergyRangeUj?: number;
}

export interface PowercapTree {
  root: string;
  /** Rewrites energy_uj in place (same inode), as the kernel's counter moves under an open fd. */
  setEnergyUj(zonePath: string, energyUj: number): void;
  /** Writes any text into a zone file, e.g. garbage into energy_uj. */
  writeRaw(zonePath: string, file: string, text: string): void;
  cleanup(): void;
}

export function buildTree(zones: readonly ZoneSpec[]): PowercapTree {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "carbonmon-powercap-"));
  // Readable by everyone, so that a child running as nobody reaches the files (see probeInChild).
  fs.chmodSync(root, 0o755);
  fs.mkdirSync(path.join(root, "intel-rapl"), { mode: 0o755 });
  fs.writeFileSync(path.join(root, "intel-rapl", "enabled"), "1\n", { mode: 0o444 });
  for (const zone of zones) {
    const dir = path.join(root, zone.path);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(dir, "name"), `${zone.name}\n`, { mode: 0o444 });
    fs.writeFileSync(path.join(dir, "energy_uj"), `${zone.energyUj}\n`, { mode: 0o444 });
    fs.writeFileSync(path.join(dir, "max_energy_range_uj"), `${zone.maxEnergyRangeUj ?? DEFAULT_RANGE_UJ}\n`, { mode: 0o444 });
    const base = path.basename(zone.path);
    if (zone.path.includes("/")) fs.symlinkSync(zone.path, path.join(root, base));
  }
  const writeRaw = (zonePath: string, file: string, text: string): void => fs.writeFileSync(path.join(root, zonePath, file), text);
  return {
    root,
    setEnergyUj: (zonePath, energyUj) => writeRaw(zonePath, "energy_uj", `${energyUj}\n`),
    writeRaw,
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  };
}

/**
 * Two sockets. Package 0 has dram at subzone :0 and core at :1, package 1 the other way round, so only
 * the `name` files can tell which is which. Energies are distinct so that a test can see which file fed
 * which device: package p → p·10+1 J, its dram → p·10+2 J, its core → p·10+3 J.
 */
export function intelTwoSocketTree(): PowercapTree {
  return buildTree([
    { path: "intel-rapl:0", name: "package-0", energyUj: 1_000_000 },
    { path: "intel-rapl:0/intel-rapl:0:0", name: "dram", energyUj: 2_000_000 },
    { path: "intel-rapl:0/intel-rapl:0:1", name: "core", energyUj: 3_000_000 },
    { path: "intel-rapl:1", name: "package-1", energyUj: 11_000_000 },
    { path: "intel-rapl:1/intel-rapl:1:0", name: "core", energyUj: 13_000_000 },
    { path: "intel-rapl:1/intel-rapl:1:1", name: "dram", energyUj: 12_000_000 },
    { path: "intel-rapl:2", name: "psys", energyUj: 50_000_000 },
    { path: "intel-rapl-mmio:0", name: "package-0", energyUj: 1_000_000 },
  ]);
}

/** AMD Zen: the same layout, package and core only. */
export function amdTree(): PowercapTree {
  return buildTree([
    { path: "intel-rapl:0", name: "package-0", energyUj: 7_000_000, maxEnergyRangeUj: 4_294_967_295 },
    { path: "intel-rapl:0/intel-rapl:0:0", name: "core", energyUj: 5_000_000, maxEnergyRangeUj: 4_294_967_295 },
  ]);
}

/** One package 1 ms of joules short of wrapping a small range (default 1 J). */
export function aboutToWrapTree(maxEnergyRangeUj = 1_000_000): PowercapTree {
  return buildTree([{ path: "intel-rapl:0", name: "package-0", energyUj: maxEnergyRangeUj - 1_000, maxEnergyRangeUj }]);
}

/** Makes energy_uj root-only, as the kernel has since CVE-2020-8694. Only non-root readers notice. */
export function makeRootOnly(tree: PowercapTree, zonePath: string): void {
  fs.chmodSync(path.join(tree.root, zonePath, "energy_uj"), 0o400);
}

export interface ChildProbe {
  uid: number;
  state: { status: string; reason?: string; hint?: string };
  devices: { id: string; status: string; statusReason?: string }[];
  readings: number;
  batches: number;
}

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
/** The unit tier runs transpiled JavaScript (ava.config.mjs); from the TypeScript sources the child needs tsx. */
const FROM_SOURCE = import.meta.url.endsWith(".ts");
const raplUrl = new URL(`../../server/agent/devices/rapl.${FROM_SOURCE ? "ts" : "js"}`, import.meta.url).href;

/**
 * Probes in a separate node process. Tests run as root, and root ignores permission bits, so chmod alone
 * cannot produce EACCES; the child therefore drops to nobody (uid/gid 65534) after loading the module and
 * before probing, and the real open() of energy_uj fails with EACCES in the real code path. When the tests
 * already run as a normal user, chmod is enough and the child keeps its uid. With `start`, the child
 * starts the source and never stops it: it exits only if the read timer does not hold the event loop.
 */
export function probeInChild(root: string, options: { dropPrivileges: boolean; start?: boolean }): ChildProbe {
  const script = `
    const { RaplSource } = await import(${JSON.stringify(raplUrl)});
    if (${options.dropPrivileges} && process.getuid() === 0) { process.setgid(65534); process.setuid(65534); }
    const source = RaplSource.probe({ root: ${JSON.stringify(root)}, maxPowerW: 1000, samplingPeriodMs: 10 });
    let batches = 0;
    if (${options.start === true}) source.start(() => { batches++; });
    const out = { uid: process.getuid(), state: source.state(), devices: source.devices(), readings: source.readAll().length, batches };
    process.stdout.write(JSON.stringify(out));`;
  const child = spawnSync(process.execPath, [...(FROM_SOURCE ? ["--import", "tsx"] : []), "--input-type=module", "-e", script], {
    cwd: repoRoot,
    encoding: "utf8",
    timeout: 20_000,
  });
  if (child.status !== 0) {
    throw new Error(`probe child failed (status ${child.status}, signal ${child.signal}): ${child.stderr}`);
  }
  return JSON.parse(child.stdout) as ChildProbe;
}
