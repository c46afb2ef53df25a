/**
 * Where NVML's energy counter updates happen in time. The counter moves every ~100 ms, but a read returns
 * only the value and (for field 83) the read time, so a value can be up to one update period old. This
 * estimator learns the update grid (period T, phase) from pairs of reads of one GPU:
 *   - the value changed between read 1 [s1, e1] and read 2 [s2, e2]  =>  an update lies in (s1, e2];
 *   - the value did not change                                         =>  no update lies in [e1, s2].
 * It keeps an arc [lo, hi] known to hold an update instant (modulo T), suggests probe reads that halve the
 * arc, and stamps each value with its update instant and a time uncertainty. The arc widens with time to
 * follow a period that differs slightly from the nominal one; contradictions reset it. Pure: no I/O.
 */
export interface ReadSpan {
  /** Call start and end, agent clock ms. */
  startMs: number;
  endMs: number;
  value: number;
}

export interface Stamp {
  /** Estimated instant the value became current, agent clock ms. */
  tMs: number;
  /** Half-width of the interval that holds the true instant, ms. */
  uncertaintyMs: number;
}

export interface UpdateGridOptions {
  /** Nominal update period, ms. */
  periodMs?: number;
  /** Arc growth per elapsed ms on each side: follows a real period up to 0.1 % off the nominal one. */
  driftPerMs?: number;
  /** Probes stop once the arc is this narrow, ms. */
  targetWidthMs?: number;
  /** How often a narrow arc is checked by a probe just beside it, ms. */
  verifyEveryMs?: number;
}

export class UpdateGrid {
  readonly periodMs: number;
  private readonly driftPerMs: number;
  /** Probes stop below this width; a read's own duration limits what is reachable, so callers raise it. */
  targetWidthMs: number;
  /** The arc, absolute agent ms; undefined until the first informative pair. */
  private lo = 0;
  private hi = 0;
  private known = false;
  private lastConstraintMs = 0;
  private last: ReadSpan | undefined;
  private lastStamp: { read: ReadSpan; lo: number; hi: number } | undefined;
  /** Contradictions seen (each resets the arc). */
  resets = 0;
  private lastVerifyMs = -Infinity;
  private verifyAfter = false;
  private lastWasProbe = false;
  /** How often a narrow arc is checked (callers lengthen it while idle: each check costs two reads). */
  verifyEveryMs: number;

  constructor(options: UpdateGridOptions = {}) {
    this.periodMs = options.periodMs ?? 100;
    this.driftPerMs = options.driftPerMs ?? 1e-3;
    this.targetWidthMs = options.targetWidthMs ?? 2;
    this.verifyEveryMs = options.verifyEveryMs ?? 1000;
  }

  get calibrated(): boolean {
    return this.known;
  }

  /** Width of the arc now (the full period when unknown), ms. */
  widthMs(nowMs: number): number {
    if (!this.known) return this.periodMs;
    return Math.min(this.periodMs, this.hi - this.lo + 2 * this.driftPerMs * Math.max(0, nowMs - this.lastConstraintMs));
  }

  /** Records a read and returns the instant its value became current. */
  observe(read: ReadSpan): Stamp {
    const prev = this.last;
    const prevStamp = this.lastStamp;
    this.last = read;
    if (prev && read.startMs >= prev.endMs) {
      if (read.value !== prev.value) this.include(prev.startMs, read.endMs, read.endMs);
      else this.exclude(prev.endMs, read.startMs, read.endMs);
    }
    return this.stamp(read, prevStamp);
  }

  /**
   * When to read next, and whether that read is a probe (for the grid only, not a measurement):
   *   - phase unknown: every half period, so that pairs of reads are shorter than a period;
   *   - arc wider than the target: a probe at its middle (bisection);
   *   - every verifyEveryMs: a probe just past (or just before) the arc, which must (must not) see the
   *     update; a wrong arc fails this check and is reset;
   *   - otherwise: half a period after an update, where a read cannot straddle one, close to
   *     nowMs + samplingPeriodMs.
   */
  nextRead(nowMs: number, readMs: number, samplingPeriodMs: number): { atMs: number; probe: boolean } {
    const lead = 2;
    if (!this.known) return { atMs: nowMs + this.periodMs / 2, probe: false };
    const grow = this.driftPerMs * Math.max(0, nowMs - this.lastConstraintMs);
    const [lo, hi] = [this.lo - grow, this.hi + grow];
    const next = (x: number): number => x + Math.ceil((nowMs + lead - x) / this.periodMs) * this.periodMs;
    // A probe says something only against a read less than a period before it: a quiet read comes first.
    const probeDue = !this.lastWasProbe && (hi - lo > this.targetWidthMs || nowMs - this.lastVerifyMs > this.verifyEveryMs);
    this.lastWasProbe = probeDue;
    if (probeDue && hi - lo > this.targetWidthMs) return { atMs: next((lo + hi) / 2 - readMs / 2), probe: true };
    if (probeDue) {
      this.lastVerifyMs = nowMs;
      this.verifyAfter = !this.verifyAfter;
      return { atMs: next(this.verifyAfter ? hi + 1 : lo - readMs - 1), probe: true };
    }
    return { atMs: this.quietRead(nowMs, samplingPeriodMs), probe: false };
  }

  /** Whether a quiet read now would be followed by a probe (or the grid is still being learnt). */
  probeWanted(nowMs: number): boolean {
    if (!this.known) return true;
    return this.widthMs(nowMs) > this.targetWidthMs || nowMs - this.lastVerifyMs > this.verifyEveryMs;
  }

  /** Gives up the probe just planned (another GPU's read holds that instant): the next call may probe again. */
  deferProbe(): void {
    this.lastWasProbe = false;
    this.lastVerifyMs = -Infinity;
  }

  /**
   * The earliest instant from nowMs at which a read of readMs cannot straddle an update: a read that may
   * straddle one cannot tell which update its value belongs to and gets a stamp almost a period wide. Used
   * for a read wanted at once (sampling going active): it waits at most past the arc (a few ms). nowMs
   * itself while the grid is unknown or too wide to read around.
   */
  clearOfUpdate(nowMs: number, readMs: number): number {
    if (!this.known) return nowMs;
    const T = this.periodMs;
    const grow = this.driftPerMs * (Math.max(0, nowMs - this.lastConstraintMs) + T);
    const lo = this.lo - grow;
    const hi = this.hi + grow;
    if (hi - lo + readMs + 2 >= T / 2) return nowMs;
    const k = Math.ceil((nowMs - 1 - hi) / T); // the first arc that ends (plus a margin) after now
    return nowMs + readMs + 1 < lo + k * T ? nowMs : hi + k * T + 1;
  }

  /** A measurement read half a period after an update, close to a sampling period from now. */
  quietRead(nowMs: number, samplingPeriodMs: number): number {
    if (!this.known) return nowMs + this.periodMs / 2;
    const mid = (this.lo + this.hi) / 2 + this.periodMs / 2;
    const quiet = mid + Math.ceil((nowMs + 2 - mid) / this.periodMs) * this.periodMs;
    return quiet + Math.max(0, Math.round((nowMs + samplingPeriodMs - this.periodMs / 2 - quiet) / this.periodMs)) * this.periodMs;
  }

  /**
   * The interval that holds the instant the read's value became current: before the read's sample (so
   * before its end, after its start minus a period), on the grid where the grid is known, and consistent
   * with the previous read (the same value: the same instant; another value: after that read began).
   */
  private stamp(read: ReadSpan, prev: { read: ReadSpan; lo: number; hi: number } | undefined): Stamp {
    let [lo, hi] = this.candidate(read);
    if (prev && prev.read.value === read.value) [lo, hi] = [Math.max(lo, prev.lo), Math.min(hi, prev.hi)];
    else if (prev && read.startMs >= prev.read.endMs) lo = Math.max(lo, prev.read.startMs);
    if (lo > hi) [lo, hi] = this.candidate(read); // inconsistent history: trust the read alone
    this.lastStamp = { read, lo, hi };
    return { tMs: (lo + hi) / 2, uncertaintyMs: (hi - lo) / 2 };
  }

  private candidate(read: ReadSpan): [number, number] {
    const T = this.periodMs;
    const loose: [number, number] = [read.startMs - T, read.endMs];
    if (!this.known || this.widthMs(read.endMs) >= T) return loose;
    // The update being stamped may be a period older than the arc's last constraint: drift both ways.
    const grow = this.driftPerMs * (Math.abs(read.endMs - this.lastConstraintMs) + T);
    const lo = this.lo - grow;
    const hi = this.hi + grow;
    // The value was sampled somewhere in [start, end]: its update is the latest one before that instant, so
    // no later than the latest update before the end, and no earlier than the latest arc wholly before the
    // start. A read that straddles updates (one stalled by a busy CPU may span several) widens the stamp.
    const k = Math.floor((read.endMs - lo) / T);
    const j = Math.floor((read.startMs - hi) / T);
    return [lo + Math.min(j, k) * T, Math.min(read.endMs, hi + k * T)];
  }

  /** The arc as of nowMs (grown for drift), and [a, b] moved by whole periods to lie near it. */
  private frame(a: number, b: number, nowMs: number): { lo: number; hi: number; shifts: Array<[number, number]> } {
    const grow = this.driftPerMs * (Math.abs(nowMs - this.lastConstraintMs) + this.periodMs);
    const lo = this.lo - grow;
    const hi = this.hi + grow;
    const k = Math.round(((a + b) / 2 - (lo + hi) / 2) / this.periodMs);
    const shifts = [k - 1, k, k + 1].map((j): [number, number] => [a - j * this.periodMs, b - j * this.periodMs]);
    return { lo, hi, shifts };
  }

  private set(lo: number, hi: number, nowMs: number): void {
    [this.lo, this.hi, this.known, this.lastConstraintMs] = [lo, hi, true, nowMs];
  }

  /** An update lies in (a, b]: keep the part of the arc inside some shift of it (the hull, if several). */
  private include(a: number, b: number, nowMs: number): void {
    if (b - a >= this.periodMs) return; // at least one update: says nothing about the phase
    if (!this.known) return this.set(a, b, nowMs);
    const { lo, hi, shifts } = this.frame(a, b, nowMs);
    const pieces = shifts.map(([x, y]) => [Math.max(lo, x), Math.min(hi, y)] as const).filter(([x, y]) => x <= y);
    if (pieces.length === 0) return this.contradiction();
    this.set(Math.min(...pieces.map((p) => p[0])), Math.max(...pieces.map((p) => p[1])), nowMs);
  }

  /** No update lies in [a, b]: trim every side of the arc that a shift of it covers. */
  private exclude(a: number, b: number, nowMs: number): void {
    if (!this.known || b <= a) return;
    if (b - a >= this.periodMs) return this.contradiction();
    let { lo, hi } = this.frame(a, b, nowMs);
    for (const [x, y] of this.frame(a, b, nowMs).shifts) {
      if (y < lo || x > hi) continue;
      if (x <= lo && y >= hi) return this.contradiction();
      if (x <= lo) lo = y;
      else if (y >= hi) hi = x;
      // a gap strictly inside the arc: keep the arc whole rather than guess a side
    }
    this.set(lo, hi, nowMs);
  }

  private contradiction(): void {
    this.resets++;
    this.known = false;
    this.lastVerifyMs = -Infinity;
  }
}
