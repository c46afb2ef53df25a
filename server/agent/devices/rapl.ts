/**
 * RAPL through the Linux powercap tree (node_exporter style). Zones are told apart by their `name` file,
 * never by the index in the directory name. Only packages (cpu:N) and their dram subzones (dram:N) are
 * measured; core, uncore and psys overlap the package and intel-rapl-mmio duplicates package 0, so they are
 * only reported. Readings carry the raw counter: unwrapping is the sampler's job.
 */
import fs from "node:fs";
import path from "node:path";
import type { Clock } from "../../shared/clock.js";
import { systemClock } from "../../shared/clock.js";
import { uJToJ } from "../../shared/units.js";
import type { BackendState, Device, EnergySource, InfoZone, RaplKind, Reading, ReadingSink } from "./energy-source.js";

export const NO_RAPL_HINT = "no RAPL on this machine (virtual machines usually have none)";
export const EACCES_HINT =
  "run the agent as root, or make energy_uj readable at boot (udev rule or chmod a+r " +
  "/sys/class/powercap/intel-rapl:*/energy_uj); in a container, bind-mount /sys/class/powercap read-only";

export interface RaplOptions {
  /** The powercap root, /sys/class/powercap outside tests. */
  root: string;
  /** Highest plausible power of one zone: bounds how long a counter takes to wrap. */
  maxPowerW: number;
  samplingPeriodMs: number;
  /** The period while idle (no window or stream open; the source starts idle); default: samplingPeriodMs. */
  idlePeriodMs?: number;
  clock?: Clock;
}

/** energy_uj holds a non-negative decimal integer and a newline; anything else is a kernel/driver fault. */
export function parseEnergyUj(text: string): number {
  const trimmed = text.trim();
  const energyUj = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(energyUj)) {
    throw new Error(`not an energy counter: ${JSON.stringify(text.slice(0, 40))}`);
  }
  return energyUj;
}

/** "package-3" → {kind "package", index 3}; "dram", "core", "uncore", "psys" carry no index. */
export function parseZoneName(text: string): { kind: RaplKind; index?: number } | undefined {
  const name = text.trim();
  const pkg = /^package-(\d+)$/.exec(name);
  if (pkg) return { kind: "package", index: Number(pkg[1]) };
  if (name === "dram" || name === "core" || name === "uncore" || name === "psys") return { kind: name };
  return undefined;
}

// ---- I/O: small functions, each touching one file or directory ----
function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isAccessError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "EACCES" || code === "EPERM";
}

/** Entries named `<prefix>:<n>` (exactly one index after the prefix), in numeric order. */
function listZones(dir: string, prefix: string): string[] {
  const pattern = new RegExp(`^${prefix}:\\d+$`); // prefixes are constants with no regex metacharacters
  const index = (entry: string): number => Number(entry.slice(entry.lastIndexOf(":") + 1));
  return fs
    .readdirSync(dir)
    .filter((entry) => pattern.test(entry))
    .sort((a, b) => index(a) - index(b));
}

function readZoneName(dir: string): { kind: RaplKind; index?: number } | undefined {
  try {
    return parseZoneName(fs.readFileSync(path.join(dir, "name"), "utf8"));
  } catch {
    return undefined;
  }
}

function readRangeJ(dir: string): number | undefined {
  try {
    return uJToJ(parseEnergyUj(fs.readFileSync(path.join(dir, "max_energy_range_uj"), "utf8")));
  } catch {
    return undefined;
  }
}

/** Up to 20 digits and a newline; reads are synchronous, so one buffer serves every zone. */
const readBuffer = Buffer.alloc(32);

/** A positional read on a kept fd: no open/close per sample, and sysfs regenerates the value at offset 0. */
function readEnergyUj(fd: number): number {
  const length = fs.readSync(fd, readBuffer, 0, readBuffer.length, 0);
  return parseEnergyUj(readBuffer.toString("utf8", 0, length));
}

// ---- discovery ----

interface Discovery {
  devices: Device[];
  info: InfoZone[];
}

function discover(root: string): Discovery {
  const devices: Device[] = [];
  const info: InfoZone[] = [];
  for (const top of listZones(root, "intel-rapl")) {
    const dir = path.join(root, top);
    const zone = readZoneName(dir);
    // psys belongs to no package: its index is the zone number, for display only.
    if (zone?.kind === "psys") info.push(infoZone(root, top, "psys", Number(top.split(":")[1])));
    if (zone?.kind !== "package" || zone.index === undefined) continue;
    const pkg = zone.index;
    if (devices.some((d) => d.id === `cpu:${pkg}`)) continue; // a second zone claiming the same package
    devices.push(device(root, top, "cpu", pkg, `package-${pkg}`));
    for (const sub of listZones(dir, top)) {
      const kind = readZoneName(path.join(dir, sub))?.kind;
      const rel = `${top}/${sub}`;
      if (kind === "dram") devices.push(device(root, rel, "dram", pkg, "dram"));
      else if (kind === "core" || kind === "uncore") info.push(infoZone(root, rel, kind, pkg));
    }
  }
  for (const mmio of listZones(root, "intel-rapl-mmio")) {
    const zone = readZoneName(path.join(root, mmio));
    if (zone?.kind !== "package") continue;
    const reason = `duplicates package-${zone.index ?? 0} (intel-rapl-mmio exposes the same counter); not measured`;
    info.push({ ...infoZone(root, mmio, "package", zone.index ?? 0), statusReason: reason });
  }
  return { devices, info };
}

function device(root: string, rel: string, domain: "cpu" | "dram", pkg: number, name: string): Device {
  const counterRangeJ = readRangeJ(path.join(root, rel));
  return {
    id: `${domain}:${pkg}`,
    domain,
    index: pkg,
    name,
    hasEnergyCounter: true,
    counterRangeJ,
    status: "ok",
    path: rel,
  };
}

function infoZone(root: string, rel: string, kind: RaplKind, index: number): InfoZone {
  const name = kind === "package" ? `package-${index}` : kind;
  return { index, kind, name, path: rel, counterRangeJ: readRangeJ(path.join(root, rel)), status: "ok" };
}

// ---- the backend ----

export class RaplSource implements EnergySource {
  readonly name = "rapl";
  /** The one timer: the next read, one period after the last (a chain of timeouts, so the period can change). */
  private timer: NodeJS.Timeout | undefined;
  private sink: ReadingSink | undefined;
  private active = false;
  /** When the last read ran, performance.now() ms (timers run on real time, whatever the agent clock does). */
  private lastReadMs = 0;

  private constructor(
    private readonly backendState: BackendState,
    private readonly found: Discovery,
    /** energy_uj fds of the readable devices, by device id; emptied by stop(). */
    private readonly fds: Map<string, number>,
    private readonly clock: Clock,
    private readonly periodMs: number,
    private readonly idlePeriodMs: number,
  ) {}

  /**
   * Synchronous on purpose: a handful of tiny sysfs reads, and callers get a ready source with no await.
   * Never throws: every problem ends up in state() and in the devices' status.
   */
  static probe(options: RaplOptions): RaplSource {
    const build = (state: BackendState, found: Discovery = { devices: [], info: [] }, fds = new Map<string, number>()) => {
      const idle = { ...options, samplingPeriodMs: Math.max(options.samplingPeriodMs, options.idlePeriodMs ?? options.samplingPeriodMs) };
      return new RaplSource(
        state,
        found,
        fds,
        options.clock ?? systemClock,
        readPeriodMs(found.devices, options),
        readPeriodMs(found.devices, idle),
      );
    };
    let found: Discovery;
    try {
      found = discover(options.root);
      if (options.maxPowerW > 0) for (const d of found.devices) d.maxPowerW = options.maxPowerW;
    } catch (err) {
      // Docker masks the directory: an access error here has the same fix as one on energy_uj.
      const reason = `cannot read the powercap root ${options.root}: ${errorText(err)}`;
      return build(unavailable(reason, isAccessError(err) ? EACCES_HINT : NO_RAPL_HINT));
    }
    if (found.devices.length === 0) {
      return build(unavailable(`no intel-rapl package zones under ${options.root}`, NO_RAPL_HINT), found);
    }
    const { fds, state } = openCounters(options.root, found.devices);
    return build(state, found, fds);
  }

  state(): BackendState {
    return { ...this.backendState };
  }

  devices(): readonly Device[] {
    return this.found.devices;
  }

  infoZones(): readonly InfoZone[] {
    return this.found.info;
  }

  /** How often start() reads while active: the sampling period, or faster so that no counter wraps twice between reads. */
  get readPeriodMs(): number {
    return this.periodMs;
  }

  /** How often it reads while idle: the idle period, or faster for the same reason. */
  get idleReadPeriodMs(): number {
    return this.idlePeriodMs;
  }

  /** One reading per readable zone; a zone whose read fails yields a failure and the others go on. */
  readAll(): Reading[] {
    const readings: Reading[] = [];
    for (const [deviceId, fd] of this.fds) {
      try {
        const energyUj = readEnergyUj(fd);
        readings.push({ deviceId, tMs: this.clock.nowMs(), counterJ: uJToJ(energyUj) });
      } catch (err) {
        const reason = `energy_uj read failed: ${errorText(err)}`;
        readings.push({ deviceId, tMs: this.clock.nowMs(), failure: { status: "unavailable", reason } });
      }
    }
    return readings;
  }

  /** With nothing readable there is nothing to schedule. The timer is unref'd: it never keeps the process alive. */
  start(sink: ReadingSink): void {
    if (this.sink !== undefined || this.fds.size === 0) return;
    this.sink = sink;
    this.read();
  }

  /**
   * Going active reads at once and then every readPeriodMs; going idle spaces the next read an idle period
   * after the last one (a gap of at most the idle period: no wrap is missed).
   */
  setActive(active: boolean): void {
    if (active === this.active) return;
    this.active = active;
    if (this.sink === undefined) return;
    if (active) this.read();
    else this.schedule();
  }

  private read(): void {
    this.lastReadMs = performance.now();
    const readings = this.readAll();
    this.schedule(); // first: a sink that throws must not end the reads
    this.sink?.(readings);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.sink === undefined) return;
    const periodMs = this.active ? this.periodMs : this.idlePeriodMs;
    this.timer = setTimeout(() => this.read(), Math.max(0, this.lastReadMs + periodMs - performance.now()));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.sink = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const fd of this.fds.values()) closeQuietly(fd);
    this.fds.clear();
  }
}

function unavailable(reason: string, hint?: string): BackendState {
  return hint === undefined ? { name: "rapl", status: "unavailable", reason } : { name: "rapl", status: "unavailable", reason, hint };
}

/** Opens every device's energy_uj; one that fails is marked unavailable with the reason, the rest go on. */
function openCounters(root: string, devices: Device[]): { fds: Map<string, number>; state: BackendState } {
  const fds = new Map<string, number>();
  let firstFailure: BackendState | undefined;
  for (const dev of devices) {
    const file = path.join(root, dev.path ?? "", "energy_uj");
    try {
      fds.set(dev.id, openAndCheck(file));
    } catch (err) {
      const denied = isAccessError(err);
      dev.status = "unavailable";
      dev.statusReason = denied
        ? `permission denied reading ${file} (root-only since CVE-2020-8694)`
        : `cannot read ${file}: ${errorText(err)}`;
      firstFailure ??= unavailable(dev.statusReason, denied ? EACCES_HINT : undefined);
    }
  }
  // Partly readable stays "ok": each device carries its own status.
  return { fds, state: fds.size === 0 && firstFailure ? firstFailure : { name: "rapl", status: "ok" } };
}

/** Opens energy_uj and reads it once, so that an unreadable or garbled counter is found at probe time. */
function openAndCheck(file: string): number {
  const fd = fs.openSync(file, "r");
  try {
    readEnergyUj(fd);
    return fd;
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already gone: nothing left to release.
  }
}

/** A counter of range R at power P wraps every R/P seconds; reading twice per wrap period never misses one. */
function readPeriodMs(devices: readonly Device[], options: RaplOptions): number {
  let periodMs = options.samplingPeriodMs;
  if (options.maxPowerW > 0) {
    for (const dev of devices) {
      if (dev.status === "ok" && dev.counterRangeJ !== undefined && dev.counterRangeJ > 0) {
        periodMs = Math.min(periodMs, (dev.counterRangeJ / (2 * options.maxPowerW)) * 1000);
      }
    }
  }
  return Math.max(1, periodMs);
}
