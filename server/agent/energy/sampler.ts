/**
 * One loop for all devices. Backends push readings (NVML from its worker once per sampling period, RAPL
 * from file reads at a wrap-safe period); the sampler turns raw counters into one timeline per device and
 * answers "energy of device d at instant t" by interpolation, with an error bound. Windows and power
 * streams only read timelines, so the hardware cost is the same for 0 or 10,000 of them.
 */
import type { Clock } from "../../shared/clock.js";
import { systemClock } from "../../shared/clock.js";
import { AppError, Code } from "../../shared/errors.js";
import { Timeline, type EdgeEnergy, type TimelinePoint } from "../core/timeline.js";
import { energyInRun, integrate, type Anchor, type IntervalEnergy } from "../core/window-energy.js";
import type { BackendState, Device, EnergySource, Reading } from "../devices/energy-source.js";

export interface DeviceSnapshot {
  device: Device;
  /** Time of the latest reading, agent clock ms. */
  tMs: number | undefined;
  powerW: number | undefined;
  memoryPowerW: number | undefined;
  temperatureC: number | undefined;
}

export type { IntervalEnergy };

/** NVML's counter moves every ~100 ms: no interval between readings can be shorter in effect. */
const COUNTER_UPDATE_MS = 100;

interface Track {
  device: Device;
  timeline: Timeline;
  lastRawJ: number | undefined;
  lastPowerW: number | undefined;
  snapshot: DeviceSnapshot;
}

export interface SamplerOptions {
  clock?: Clock;
  /** Points kept per device (default 20,000: over half an hour at 10 Hz). */
  timelineCapacity?: number;
  /**
   * The period readings are taken at while active (default 100 ms). An interval between readings longer
   * than 1.5 of these (or of NVML's 100 ms counter update) hides what the power did inside: it is bounded
   * by the device's maximum power, not by the power seen around it.
   */
  samplingPeriodMs?: number;
  /**
   * How long sources stay at full rate after the last holder lets go (default 0). Windows begun and ended
   * back to back would otherwise wake every source for each one: every wake-up reads every device at once.
   */
  idleAfterMs?: number;
}

export class Sampler {
  /** Readings ingested so far, all devices together. */
  readings = 0;
  private readonly tracks = new Map<string, Track>();
  /** Each device's first point in this run (kept after the timeline drops it). */
  private readonly firstPoints = new Map<string, TimelinePoint>();
  private readonly listeners = new Set<() => void>();
  private readonly waiters = new Set<{ afterMs: number; ids: string[]; resolve: () => void }>();
  private readonly clock: Clock;
  private readonly demand = new Set<string>();
  private readonly deviceList: Device[];
  private statusChanges = 0;
  private readonly idleAfterMs: number;
  private idleTimer: NodeJS.Timeout | undefined;
  private sourcesActive = false;
  private stopped = false;
  /** When the demand last became empty, performance.now() ms. */
  private releasedAtMs = 0;

  constructor(
    readonly sources: readonly EnergySource[],
    options: SamplerOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.idleAfterMs = options.idleAfterMs ?? 0;
    for (const source of sources) {
      for (const device of source.devices()) {
        const snapshot = { device, tMs: undefined, powerW: undefined, memoryPowerW: undefined, temperatureC: undefined };
        this.tracks.set(device.id, {
          device,
          timeline: new Timeline({
            observedSpanMs: 1.5 * Math.max(options.samplingPeriodMs ?? 100, COUNTER_UPDATE_MS),
            ...(options.timelineCapacity !== undefined ? { capacity: options.timelineCapacity } : {}),
            ...(device.maxPowerW !== undefined ? { maxPowerW: device.maxPowerW } : {}),
          }),
          lastRawJ: undefined,
          lastPowerW: undefined,
          snapshot,
        });
      }
    }
    this.deviceList = [...this.tracks.values()].map((t) => t.device);
  }

  start(): void {
    for (const source of this.sources) source.start((batch) => this.ingest(batch));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    await Promise.all(this.sources.map((s) => s.stop()));
    for (const w of this.waiters) w.resolve();
    this.waiters.clear();
  }

  /** Every device, in a fixed order (the same array each call: devices are found once, at start). */
  devices(): readonly Device[] {
    return this.deviceList;
  }

  device(deviceId: string): Device | undefined {
    return this.tracks.get(deviceId)?.device;
  }

  /** Bumped whenever a device's status changes: what was derived from the statuses before is stale. */
  get statusVersion(): number {
    return this.statusChanges;
  }

  states(): BackendState[] {
    return this.sources.map((s) => s.state());
  }

  /**
   * Declares whether a holder (open windows, power streams) needs full-rate sampling now. With no holder
   * active, sources sample at their idle period; when the first holder becomes active (or the last one
   * idle), every source is told. Sources start idle and so does the demand: an agent nobody uses reads its
   * hardware at the idle rate.
   */
  setDemand(holder: string, active: boolean): void {
    if (this.stopped) return; // a window ended during shutdown: the sources are stopping
    const was = this.demand.size > 0;
    if (active) this.demand.add(holder);
    else this.demand.delete(holder);
    const now = this.demand.size > 0;
    if (now === was) return;
    if (now) {
      // Within the linger the sources are still at full rate: nothing to tell (the timer finds the demand back).
      if (!this.sourcesActive) this.tellSources(true);
      return;
    }
    this.releasedAtMs = performance.now();
    if (this.idleAfterMs <= 0) this.tellSources(false);
    else this.idleTimer ??= setTimeout(() => this.lingerOver(), this.idleAfterMs).unref();
  }

  /** Whether the sources sample at full rate now (some holder needs it, or did less than idleAfterMs ago). */
  get active(): boolean {
    return this.sourcesActive;
  }

  /** One timer for the linger, not one per release: windows begun and ended back to back create none. */
  private lingerOver(): void {
    this.idleTimer = undefined;
    if (this.demand.size > 0) return;
    const leftMs = this.releasedAtMs + this.idleAfterMs - performance.now();
    if (leftMs > 1) this.idleTimer = setTimeout(() => this.lingerOver(), leftMs).unref();
    else this.tellSources(false);
  }

  private tellSources(active: boolean): void {
    this.sourcesActive = active;
    for (const source of this.sources) source.setActive?.(active);
  }

  /** Called for every batch of readings; listeners must be cheap (they run on the sampler's turn). */
  onUpdate(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  snapshot(deviceId: string): DeviceSnapshot | undefined {
    return this.tracks.get(deviceId)?.snapshot;
  }

  /**
   * The device's cumulative energy since the sampler started at instant t (interpolated, or extrapolated
   * with the last power past the latest reading), joules; undefined before its first reading. No hardware read.
   */
  cumulativeEnergyJ(deviceId: string, tMs: number): number | undefined {
    const timeline = this.tracks.get(deviceId)?.timeline;
    if (!timeline?.last()) return undefined;
    return timeline.energyAt(tMs)?.energyJ ?? timeline.last()!.energyJ;
  }

  /** Whether the device has a reading on its timeline in this run. */
  hasReading(deviceId: string): boolean {
    return this.tracks.get(deviceId)?.timeline.last() !== undefined;
  }

  ingest(batch: readonly Reading[]): void {
    for (const reading of batch) {
      const track = this.tracks.get(reading.deviceId);
      if (track) this.apply(track, reading);
    }
    this.readings += batch.length;
    this.wakeWaiters();
    for (const listener of this.listeners) listener();
  }

  private apply(track: Track, r: Reading): void {
    if (r.failure) {
      Object.assign(track.device, { status: r.failure.status, statusReason: r.failure.reason });
      this.statusChanges++;
      return;
    }
    const point = integrate(
      { last: track.timeline.last(), lastRawJ: track.lastRawJ, lastPowerW: track.lastPowerW },
      r,
      track.device.counterRangeJ,
    );
    if (r.counterJ !== undefined && point) track.lastRawJ = r.counterJ;
    if (!point) return;
    track.timeline.push(point);
    const powerW = point.powerW;
    track.lastPowerW = powerW;
    if (!this.firstPoints.has(track.device.id)) this.firstPoints.set(track.device.id, track.timeline.last()!);
    Object.assign(track.snapshot, { tMs: r.tMs, powerW, memoryPowerW: r.memoryPowerW, temperatureC: r.temperatureC });
  }

  private track(deviceId: string): Track {
    const track = this.tracks.get(deviceId);
    if (!track) throw new AppError(Code.NotFound, `no device ${deviceId} on this host`);
    return track;
  }

  /** Energy of a device at instant t (agent clock ms), or undefined when the timeline does not reach t. */
  energyAt(deviceId: string, tMs: number): EdgeEnergy | undefined {
    return this.track(deviceId).timeline.energyAt(tMs);
  }

  /** Energy of a device over [t0, t1]. */
  energyBetween(deviceId: string, t0Ms: number, t1Ms: number): IntervalEnergy {
    const e0 = this.track(deviceId).timeline.energyAt(t0Ms);
    if (!e0) throw this.notCovered(deviceId);
    return this.energySince(deviceId, e0, t1Ms);
  }

  /** Energy of a device from an edge resolved earlier (a window's begin) to t1. */
  energySince(deviceId: string, e0: EdgeEnergy, t1Ms: number): IntervalEnergy {
    const track = this.track(deviceId);
    const e1 = track.timeline.energyAt(t1Ms);
    if (!e1) throw this.notCovered(deviceId);
    return energyInRun(e0, e1, track.device.hasEnergyCounter);
  }

  private notCovered(deviceId: string): AppError {
    return new AppError(Code.FailedPrecondition, `${deviceId} has no readings covering the interval`, {
      hint: "the device was not sampled then (agent restarted or device unavailable)",
    });
  }

  /**
   * A device's state at instant t for chaining across restarts: cumulative energy, the raw counter it
   * implies (the nearest point's raw plus the energy since, modulo the counter's range) and power.
   */
  anchorAt(deviceId: string, tMs: number): Anchor | undefined {
    const track = this.track(deviceId);
    const edge = track.timeline.energyAt(tMs);
    const p = track.timeline.pointAtOrBefore(tMs);
    if (!edge || !p) return undefined;
    const anchor: Anchor = { tMs, cumJ: edge.energyJ };
    if (p.powerW !== undefined) anchor.powerW = p.powerW;
    if (p.rawJ !== undefined) {
      const rawJ = p.rawJ + (edge.energyJ - p.energyJ);
      anchor.rawJ = track.device.counterRangeJ ? rawJ % track.device.counterRangeJ : rawJ;
    }
    return anchor;
  }

  /** The first and the latest point of a device, as anchors (for checkpoints). */
  span(deviceId: string): { first: Anchor; last: Anchor } | undefined {
    const tl = this.track(deviceId).timeline;
    const toAnchor = (p: TimelinePoint): Anchor => ({
      tMs: p.tMs,
      cumJ: p.energyJ,
      ...(p.rawJ !== undefined ? { rawJ: p.rawJ } : {}),
      ...(p.powerW !== undefined ? { powerW: p.powerW } : {}),
    });
    const first = this.firstPoints.get(deviceId);
    const last = tl.last();
    return first && last ? { first: toAnchor(first), last: toAnchor(last) } : undefined;
  }

  /** Resolves once every given device has a reading after t (or is no longer ok), or after timeoutMs. */
  waitForReadingsAfter(tMs: number, deviceIds: readonly string[], timeoutMs: number): Promise<void> {
    const ids = deviceIds.filter((id) => this.tracks.has(id));
    if (this.covered(tMs, ids)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = { afterMs: tMs, ids, resolve: () => (clearTimeout(timer), this.waiters.delete(waiter), resolve()) };
      const timer = setTimeout(waiter.resolve, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  private covered(tMs: number, ids: readonly string[]): boolean {
    return ids.every((id) => {
      const t = this.tracks.get(id)!;
      return t.device.status !== "ok" || (t.timeline.last()?.tMs ?? -Infinity) > tMs;
    });
  }

  private wakeWaiters(): void {
    for (const w of this.waiters) if (this.covered(w.afterMs, w.ids)) w.resolve();
  }

  now(): number {
    return this.clock.nowMs();
  }
}
