/**
 * Reading NVML GPUs on a schedule, as plain classes: GpuReader reads one GPU and stamps each counter value
 * with the instant it became current; ReadLoop reads every GPU when it is due, with one timer. They take an
 * `Nvml` (the koffi binding in the worker; an in-memory one in tests), a clock and timers, so the stamp
 * heuristic and the probe/wake schedule are tested without a thread, real time or the C library.
 * nvml-worker.ts only wires a ReadLoop to its thread.
 *
 * Each GPU is read once per sampling period, plus the probes that learn when its counter updates. While no
 * window or stream needs full-rate sampling, each GPU is read once per idle period instead (plus at most
 * one probe, which keeps its update grid learnt); going active reads every GPU at once.
 */
import { systemClock, type Clock } from "../../shared/clock.js";
import { AppError } from "../../shared/errors.js";
import { mJToJ, mWToW } from "../../shared/units.js";
import { UpdateGrid } from "../core/update-grid.js";
import type { Reading } from "./energy-source.js";
import { FIELD_POWER_AVERAGE, FIELD_TOTAL_ENERGY, SCOPE_GPU, SCOPE_MEMORY, type FieldRequest, type Nvml } from "./nvml-binding.js";
import { isLost, NVML_SUCCESS, nvmlError } from "./nvml-errors.js";
import type { GpuPlan } from "./nvml-probe.js";

/** NVML's energy counter moves every ~100 ms (measured on H100 and H200). */
const COUNTER_UPDATE_MS = 100;
/** Stalled or straddling reads in a row that are read again rather than published. */
const MAX_STALL_RETRIES = 3;
/**
 * Probes while idle. Each probe is a read and a wake-up of the worker, and wake-ups are what an idle agent's
 * CPU goes on: at idle, probes were half the reads (8 GPUs: 16 reads/s, 1.2 % of a core). The learnt arc
 * grows by the drift allowance (UpdateGrid.driftPerMs, 2 ms/s) and a bisection probe narrows it by only
 * about a third (a read is 4 ms long), so a probe per GPU per second kept it at its target. While idle the
 * arc may be a few ms wider (IDLE_EXTRA_WIDTH_MS: a probe every ~2 s) and a narrow arc is checked every 10 s
 * instead of every second; a wake-up's first reads are stamped a few ms wider, and full-rate probes narrow
 * the arc again within a few periods.
 */
const VERIFY_EVERY_MS = 1000;
const IDLE_VERIFY_EVERY_MS = 10_000;
const IDLE_EXTRA_WIDTH_MS = 4;

/** The driver's realtime µs stamps on the agent's clock. */
export interface StampConverter {
  /** Called once per tick (a converter may recalibrate). */
  update(): void;
  /** The stamp on the agent's time base; a stamp far outside the read's span [startMs, endMs] is not trusted. */
  toAgentMs(timestampUs: number, startMs: number, endMs: number): number;
}

/**
 * Converts the driver's realtime µs stamps to the agent clock. Date.now() only has whole milliseconds, so
 * calibrate on the instant it ticks over (then it is exact), and again every minute to follow NTP slew.
 */
export class RealtimeOffset implements StampConverter {
  private offsetMs = 0;
  private calibratedAtMs = -Infinity;

  update(): void {
    const now = systemClock.nowMs();
    if (now - this.calibratedAtMs < 60_000) return;
    const start = Date.now();
    let tick = start;
    while (tick === start) tick = Date.now();
    this.calibratedAtMs = systemClock.nowMs();
    this.offsetMs = tick - this.calibratedAtMs;
  }

  /**
   * The driver's stamp on the agent's time base; a stamp more than 2 s outside the read's span [startMs,
   * endMs] is not trusted (a stepped wall clock) and the read's midpoint stands in.
   */
  toAgentMs(timestampUs: number, startMs: number, endMs: number): number {
    const t = timestampUs / 1000 - this.offsetMs;
    return t > startMs - 2000 && t < endMs + 2000 ? t : (startMs + endMs) / 2;
  }
}

/** One read of one GPU: what it returned and when the call ran. */
interface RawRead {
  startMs: number;
  endMs: number;
  counterMj?: number;
  fieldTimestampUs?: number;
  powerW?: number;
  memoryPowerW?: number;
  temperatureC?: number;
}

/**
 * Reads one GPU on its own schedule. A counter value is stamped with the instant it became current: the
 * driver's field timestamp where that is the update instant (value held => timestamp held), otherwise the
 * update grid learnt from the reads themselves (real drivers stamp the read time).
 */
export class GpuReader {
  nextAtMs = 0;
  /** The next read only teaches the update grid (it is not published). */
  nextIsProbe = false;
  /** The period between measurement reads now: the sampling period, or the idle period. */
  periodMs: number;
  private readonly grid = new UpdateGrid({ periodMs: COUNTER_UPDATE_MS });
  private last: RawRead | undefined;
  /** undefined until a held value shows whether field timestamps are update instants. */
  private driverStamps: boolean | undefined;
  private readMs = 4;
  /** How long the latest read took, ms (metrics). */
  lastReadMs = 0;

  constructor(
    private readonly nvml: Nvml,
    readonly plan: GpuPlan,
    private readonly offset: StampConverter,
    private readonly samplingPeriodMs: number,
    private readonly clock: Clock,
  ) {
    this.periodMs = samplingPeriodMs;
  }

  /** Set when a read finds the GPU lost: it is not read again (the sampler records the status). */
  lost = false;

  get ok(): boolean {
    return !this.lost && this.plan.device.status === "ok";
  }

  /** Reads now; returns the reading to publish (none for a probe), and schedules the next read. */
  read(): Reading | undefined {
    const raw = this.readRaw();
    const probe = this.nextIsProbe;
    const reading = this.toReading(raw);
    const stalled = !probe && this.stallRetries < MAX_STALL_RETRIES && (this.stalled(raw) || this.straddled(reading));
    this.schedule(raw);
    this.stallRetries = stalled ? this.stallRetries + 1 : 0;
    if (!stalled) return probe ? undefined : reading;
    // Preempted inside the call or just before it (a busy CPU): the value may belong to any update the call
    // spanned, so its stamp is as wide as that. It still teaches the grid but is not published: a measurement read
    // follows at once (as soon as it cannot straddle an update), and is stamped narrowly. After a few
    // stalls in a row a reading is published whatever its duration: a slow driver is never starved.
    this.nextIsProbe = false;
    this.nextAtMs = this.clock.nowMs();
    return undefined;
  }

  /** Stalled reads just before this one (not published). */
  private stallRetries = 0;

  /**
   * A value stamped far wider than the learnt grid allows: the read straddled an update (the thread was
   * held up between deciding to read, when no update was near, and reading).
   */
  private straddled(reading: Reading): boolean {
    if (reading.timeUncertaintyMs === undefined || !this.grid.calibrated) return false;
    const widthMs = this.grid.widthMs(reading.tMs);
    return widthMs < COUNTER_UPDATE_MS / 4 && reading.timeUncertaintyMs > widthMs + this.readMs;
  }

  /**
   * A read that took far longer than this GPU's reads do (the quickest of its recent ones: a driver that is
   * slow every time is not stalled): the thread was held up inside it.
   */
  private stalled(raw: RawRead): boolean {
    if (this.plan.energy === "none" || this.driverStamps || this.recentReads === 0) return false;
    let quickestMs = Infinity;
    for (let i = 0; i < Math.min(this.recentReads, this.recentReadMs.length); i++) quickestMs = Math.min(quickestMs, this.recentReadMs[i]!);
    return raw.endMs - raw.startMs > 3 * quickestMs + 5;
  }

  /** The durations of the latest reads (a ring), ms. */
  private readonly recentReadMs = new Float64Array(16);
  private recentReads = 0;

  private toReading(raw: RawRead): Reading {
    const { plan } = this;
    const reading: Reading = { deviceId: plan.device.id, tMs: (raw.startMs + raw.endMs) / 2 };
    if (raw.powerW !== undefined) reading.powerW = raw.powerW;
    if (raw.memoryPowerW !== undefined) reading.memoryPowerW = raw.memoryPowerW;
    if (raw.temperatureC !== undefined) reading.temperatureC = raw.temperatureC;
    if (raw.counterMj === undefined) return reading;
    reading.counterJ = mJToJ(raw.counterMj);
    const prev = this.last;
    // A held value that keeps its stamp proves update-instant stamps, for good. A held value with a new
    // stamp suggests read-time stamps, unless the GPU drew no power across updates: that never overrules.
    if (prev?.counterMj === raw.counterMj && raw.fieldTimestampUs !== undefined && this.driverStamps !== true) {
      this.driverStamps = prev.fieldTimestampUs === raw.fieldTimestampUs;
    }
    this.last = raw;
    if (this.driverStamps && raw.fieldTimestampUs !== undefined) {
      reading.tMs = this.offset.toAgentMs(raw.fieldTimestampUs, raw.startMs, raw.endMs);
      return reading;
    }
    const stamp = this.grid.observe({ startMs: raw.startMs, endMs: raw.endMs, value: raw.counterMj });
    reading.tMs = stamp.tMs;
    reading.timeUncertaintyMs = stamp.uncertaintyMs;
    return reading;
  }

  /** Reads for measurement next instead of the planned probe; the probe is asked for again later. */
  deferProbe(): void {
    this.grid.deferProbe();
    this.nextIsProbe = false;
    this.nextAtMs = this.grid.quietRead(this.clock.nowMs(), this.quietPeriodMs(this.clock.nowMs()));
  }

  /** Sampling went active: the next read is a measurement, now (see readyToRead). */
  wake(nowMs: number): void {
    if (this.nextIsProbe) this.grid.deferProbe();
    this.nextIsProbe = false;
    this.nextAtMs = nowMs;
  }

  /**
   * Whether a read may start now. A measurement read waits (a few ms at most) when it could straddle a
   * counter update: its value would then be stamped within a whole period instead of the grid's few ms.
   * Reads are planned half a period from updates, but a wake-up reads at once and, on a busy CPU, a timer
   * fires late, anywhere in the period. Probes are exempt: they are placed at the updates on purpose.
   */
  readyToRead(nowMs: number): boolean {
    if (this.nextIsProbe || this.plan.energy === "none" || this.driverStamps) return true;
    const clearMs = this.grid.clearOfUpdate(nowMs, this.readMs);
    if (clearMs <= nowMs + 0.5) return true;
    this.nextAtMs = clearMs;
    return false;
  }

  /**
   * Whether this GPU's next (idle) measurement read may be taken now, ahead of its time, in another GPU's
   * wake-up: not a probe, not a read that leads a probe (that pair keeps its own timing), and clear of an update.
   */
  mayReadEarly(nowMs: number): boolean {
    if (this.nextIsProbe) return false;
    if (this.plan.energy === "none" || this.driverStamps) return true;
    return !this.grid.probeWanted(nowMs) && this.grid.clearOfUpdate(nowMs, this.readMs) <= nowMs + 0.5;
  }

  /**
   * The spacing of measurement reads: the current period, except while the update grid is unknown or has
   * drifted wide (then the sampling period, so that it is learnt again within about a second; an idle GPU
   * whose grid were lost would stamp the first readings after a wake-up a whole period wide).
   */
  private quietPeriodMs(nowMs: number): number {
    const learning = !this.grid.calibrated || this.grid.widthMs(nowMs) > 2 * this.grid.targetWidthMs;
    return learning ? this.samplingPeriodMs : this.periodMs;
  }

  private schedule(raw: RawRead): void {
    const readMs = raw.endMs - raw.startMs;
    this.lastReadMs = readMs;
    // A stalled read says little about the next: each read moves the estimate by at most 10 % of itself, so
    // stalls barely move it, while a driver that is truly slower is followed within a few dozen reads.
    this.readMs += 0.1 * (Math.min(readMs, 2 * this.readMs) - this.readMs);
    this.recentReadMs[this.recentReads++ % this.recentReadMs.length] = readMs;
    const idle = this.periodMs > this.samplingPeriodMs;
    this.grid.targetWidthMs = 1.5 * this.readMs + 1 + (idle ? IDLE_EXTRA_WIDTH_MS : 0);
    this.grid.verifyEveryMs = idle ? IDLE_VERIFY_EVERY_MS : VERIFY_EVERY_MS;
    if (this.plan.energy === "none" || this.driverStamps) {
      this.nextIsProbe = false;
      this.nextAtMs = raw.startMs + this.periodMs;
      return;
    }
    // Idle: one quiet read per idle period, each followed by at most one probe (the grid's alternation).
    const next = this.grid.nextRead(raw.endMs, this.readMs, this.quietPeriodMs(raw.endMs));
    this.nextIsProbe = next.probe;
    this.nextAtMs = next.atMs;
  }

  private readRaw(): RawRead {
    const { nvml, plan } = this;
    const handle = plan.handle;
    const requests: FieldRequest[] = [];
    if (plan.energy === "field") requests.push({ fieldId: FIELD_TOTAL_ENERGY, scopeId: SCOPE_GPU });
    if (plan.power) requests.push(plan.power);
    if (plan.memoryPower) requests.push({ fieldId: FIELD_POWER_AVERAGE, scopeId: SCOPE_MEMORY });
    const raw: RawRead = { startMs: this.clock.nowMs(), endMs: 0 };
    const { ret, results } = requests.length > 0 ? nvml.fieldValues(handle, requests) : { ret: NVML_SUCCESS, results: [] };
    this.fail("nvmlDeviceGetFieldValues", ret);
    let k = 0;
    if (plan.energy === "field") {
      const energy = results[k++]!;
      this.fail("field TOTAL_ENERGY_CONSUMPTION", energy.ret);
      raw.counterMj = energy.value;
      raw.fieldTimestampUs = energy.timestampUs;
    } else if (plan.energy === "call") {
      const [r, mj] = nvml.totalEnergyMj(handle);
      this.fail("nvmlDeviceGetTotalEnergyConsumption", r);
      raw.counterMj = mj;
    }
    raw.endMs = this.clock.nowMs();
    if (plan.power) {
      const p = results[k++]!;
      this.fail("field POWER_INSTANT", p.ret);
      if (p.ret === NVML_SUCCESS) raw.powerW = mWToW(p.value);
    } else {
      const [r, mw] = nvml.powerUsageMw(handle);
      this.fail("nvmlDeviceGetPowerUsage", r);
      if (r === NVML_SUCCESS) raw.powerW = mWToW(mw);
    }
    if (plan.memoryPower && results[k]!.ret === NVML_SUCCESS) raw.memoryPowerW = mWToW(results[k]!.value);
    const [tr, tempC] = nvml.temperatureC(handle);
    if (tr === NVML_SUCCESS) raw.temperatureC = tempC;
    return raw;
  }

  /** A lost GPU throws (the loop marks it lost); other failures of one reading are tolerated. */
  private fail(call: string, ret: number): void {
    if (ret === NVML_SUCCESS) return;
    if (isLost(ret)) throw nvmlError(call, ret, this.nvml.errorString(ret));
  }
}

export interface ReadLoopOptions {
  samplingPeriodMs: number;
  idlePeriodMs: number;
  clock: Clock;
  /** Where readings go (the worker posts them to the main thread), with how long each read since the previous call took (ms, probes included); a tick with nothing to publish calls nothing. */
  onReadings: (readings: Reading[], energyReads: number, readMs: number[]) => void;
  /** The driver's stamps on the agent's time base (default: calibrated against the system's realtime clock). */
  stamps?: StampConverter;
  /** Timers (default: the process's); tests drive the loop with their own. */
  timers?: Timers;
}

/** The timer functions the loop schedules its ticks with. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const processTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Reads every GPU when it is due; one timer for all. */
export class ReadLoop {
  energyReads = 0;
  /** Readings not posted yet (see post), and the durations of the reads since the latest post, ms. */
  private unposted: Reading[] = [];
  private unpostedReadMs: number[] = [];
  /** When the oldest unposted reading was read (agent ms). */
  private unpostedSinceMs = Infinity;
  private timer: unknown;
  readonly readers: GpuReader[];
  private readonly offset: StampConverter;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly samplingPeriodMs: number;
  private readonly idlePeriodMs: number;
  private active = false;
  private stopped = false;

  constructor(
    nvml: Nvml,
    plans: GpuPlan[],
    private readonly options: ReadLoopOptions,
  ) {
    this.clock = options.clock;
    this.timers = options.timers ?? processTimers;
    this.offset = options.stamps ?? new RealtimeOffset();
    this.samplingPeriodMs = options.samplingPeriodMs;
    this.idlePeriodMs = options.idlePeriodMs;
    this.readers = plans.map((p) => new GpuReader(nvml, p, this.offset, this.samplingPeriodMs, this.clock));
    for (const reader of this.readers) reader.periodMs = this.idlePeriodMs;
  }

  start(): void {
    this.tick();
  }

  /**
   * Going active reads every GPU now (one tick, replacing the pending timer), then each goes back to its
   * full-rate schedule. Going idle changes only the spacing of the reads after the next one: the timer
   * already set stays the only one.
   */
  setActive(active: boolean): void {
    if (active === this.active) return;
    this.active = active;
    for (const reader of this.readers) reader.periodMs = active ? this.samplingPeriodMs : this.idlePeriodMs;
    if (!active || this.stopped) return;
    const now = this.clock.nowMs();
    for (const reader of this.readers) if (reader.ok) reader.wake(now);
    this.timers.clearTimeout(this.timer);
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Sampling at the idle period, which is longer than the sampling period (equal: never idle). */
  private get idle(): boolean {
    return !this.active && this.idlePeriodMs > this.samplingPeriodMs;
  }

  private keep(reading: Reading): void {
    if (this.unposted.length === 0) this.unpostedSinceMs = this.clock.nowMs();
    this.unposted.push(reading);
  }

  /**
   * Posts what was read, in order. At full rate every tick that read something for publishing posts. While
   * idle, readings wait until the oldest is IDLE_POST_DELAY_MS old (at most half the idle period), so that
   * the main thread wakes about twice a second rather than once per GPU read; probes alone never post
   * (their read durations go with the next post). A lost GPU posts at once; going active posts everything.
   */
  private post(urgent: boolean): void {
    if (this.unposted.length === 0) return;
    if (this.idle && !urgent && this.clock.nowMs() - this.unpostedSinceMs < Math.min(IDLE_POST_DELAY_MS, this.idlePeriodMs / 2)) return;
    const [readings, readMs] = [this.unposted, this.unpostedReadMs];
    [this.unposted, this.unpostedReadMs, this.unpostedSinceMs] = [[], [], Infinity];
    this.options.onReadings(readings, this.energyReads, readMs);
  }

  private avoidCollision(reader: GpuReader): void {
    if (reader.nextIsProbe && collides(reader, this.readers)) reader.deferProbe();
  }

  /** Reads one GPU; false if it was found lost. */
  private readOne(reader: GpuReader): boolean {
    try {
      const reading = reader.read();
      this.unpostedReadMs.push(reader.lastReadMs);
      if (reader.plan.energy !== "none") this.energyReads++;
      if (reading) this.keep(reading);
      this.avoidCollision(reader);
      return true;
    } catch (err) {
      reader.lost = true;
      this.keep({
        deviceId: reader.plan.device.id,
        tMs: this.clock.nowMs(),
        failure: { status: "lost", reason: AppError.from(err).detail },
      });
      return false;
    }
  }

  /**
   * While idle, the GPUs whose measurement read is due within IDLE_EARLY_MS (at most half the idle period)
   * are read in this wake-up rather than each in its own: read together, they stay together, a period on.
   * Not when a probe is due within PROBE_CLEARANCE_MS (the reads would hold it past its instant).
   */
  private readEarly(): boolean {
    let ok = true;
    const now = this.clock.nowMs();
    const horizonMs = Math.min(IDLE_EARLY_MS, this.idlePeriodMs / 2);
    for (const reader of this.readers) {
      const t = this.clock.nowMs();
      if (this.readers.some((r) => r.ok && r.nextIsProbe && r.nextAtMs < t + PROBE_CLEARANCE_MS)) break;
      if (!reader.ok || reader.nextAtMs > now + horizonMs || !reader.mayReadEarly(t)) continue;
      ok = this.readOne(reader) && ok;
    }
    return ok;
  }

  private tick(): void {
    this.offset.update();
    const now = this.clock.nowMs();
    let ok = true;
    let read = false;
    for (const reader of this.readers) {
      // Node's timers fire up to 1 ms early (the loop's time is whole ms): a reader due within 1 ms reads
      // now, rather than on a wake-up of its own right after this one.
      if (!reader.ok || reader.nextAtMs > now + 1 || !reader.readyToRead(this.clock.nowMs())) continue;
      ok = this.readOne(reader) && ok;
      read = true;
    }
    if (read && this.idle) ok = this.readEarly() && ok;
    this.post(!ok);
    if (this.stopped) return;
    const due = Math.min(...this.readers.filter((r) => r.ok).map((r) => r.nextAtMs));
    if (Number.isFinite(due)) this.timer = this.timers.setTimeout(() => this.tick(), Math.max(0, due - this.clock.nowMs()));
  }
}

/**
 * NVML serialises reads: GPUs that share an update phase would queue their probes behind each other, and
 * a late probe misses its instant. So at most one probe runs at a time: a colliding one gives way to a
 * measurement read and is asked for again afterwards.
 */
function collides(reader: GpuReader, others: readonly GpuReader[]): boolean {
  return others.some((o) => o !== reader && o.ok && o.nextIsProbe && Math.abs(o.nextAtMs - reader.nextAtMs) < PROBE_CLEARANCE_MS);
}
const PROBE_CLEARANCE_MS = 10;
/** How far ahead of its time an idle measurement read may be taken in another GPU's wake-up, ms. */
const IDLE_EARLY_MS = 500;
/** The longest an idle reading waits in the worker before it is posted, ms. */
const IDLE_POST_DELAY_MS = 500;
