/**
 * One device's energy over time: a bounded list of points (time, cumulative energy since the sampler
 * started) and the answer to "how much energy had it used at instant t?". Pure: no I/O, no clock.
 *
 * Between two counter updates the energy is interpolated linearly. Its error bound comes from how much
 * the power can have changed inside the interval (the neighbouring intervals' mean powers and the instant
 * power at both ends): a step of size dP anywhere inside an interval of length T puts the interpolation at
 * most dP*(t-t0)*(t1-t)/T away from the truth at t. That holds for intervals as long as the sampling
 * expects; a longer one (readings missed while the CPU was busy, or idle sampling) may hide a burst that
 * its mean smooths away, so there the bound is what the device's maximum power allows.
 * After the last update the energy is extrapolated with the last instant power. Nothing is known of the
 * power since, so that edge's bound covers anything the device can draw: from 0 W to its maximum power
 * (the larger of its limit and the highest power it has been seen at) over the time since the update. A
 * device whose maximum is unknown gets an infinite bound there: unbounded, not a guess.
 * Where a point's instant is itself estimated (+/- timeUncertaintyMs), the edge's bound grows by power x
 * that uncertainty.
 */
export interface TimelinePoint {
  tMs: number;
  /** Cumulative energy since the timeline began, joules (wraps and resets already removed). */
  energyJ: number;
  /** Instant power at tMs, watts, when known. */
  powerW?: number;
  /** Cumulative error bound accumulated by approximations (power integration, resets), joules. */
  uncertaintyJ: number;
  /** Counter resets seen so far. */
  resets: number;
  /** Half-width of the interval holding the true tMs (estimated counter update instants), ms. */
  timeUncertaintyMs?: number;
  /** The raw hardware counter at tMs, joules (for chaining windows across agent restarts). */
  rawJ?: number;
}

export type EdgeKind = "interpolated" | "extrapolated" | "exact";

export interface EdgeEnergy {
  energyJ: number;
  /** Error bound of this instant's interpolation or extrapolation alone, joules. */
  edgeUncertaintyJ: number;
  /** The cumulative approximation bound up to here (TimelinePoint.uncertaintyJ), joules. */
  cumulativeUncertaintyJ: number;
  kind: EdgeKind;
  resets: number;
  /** The counter update intervals [i0, i1] the edge falls in, by absolute point number. */
  segment: number;
}

/** The energy between two edges, with its error bound. */
export function energyBetween(e0: EdgeEnergy, e1: EdgeEnergy): { energyJ: number; uncertaintyJ: number } {
  return {
    energyJ: Math.max(0, e1.energyJ - e0.energyJ),
    uncertaintyJ: e0.edgeUncertaintyJ + e1.edgeUncertaintyJ + (e1.cumulativeUncertaintyJ - e0.cumulativeUncertaintyJ),
  };
}

export interface TimelineOptions {
  /** Points kept (default 20,000: over half an hour at 10 Hz). */
  capacity?: number;
  /** The most the device can draw (a GPU's power limit, a RAPL zone's plausible maximum), watts; undefined: unknown. */
  maxPowerW?: number;
  /**
   * Intervals up to this long are bounded by the power seen around them; longer ones (readings missed on a
   * busy CPU, idle sampling) hide what the power did inside, so they are bounded by the maximum power (ms;
   * default: unlimited).
   */
  observedSpanMs?: number;
}

export class Timeline {
  private points: TimelinePoint[] = [];
  /** Absolute number of points dropped from the front. */
  private dropped = 0;
  private readonly capacity: number;
  /** The device's maximum power: its limit, raised by any higher power it was seen at. */
  private maxPowerW: number;

  private readonly observedSpanMs: number;

  constructor(options: TimelineOptions = {}) {
    this.capacity = options.capacity ?? 20_000;
    this.maxPowerW = options.maxPowerW ?? Number.POSITIVE_INFINITY;
    this.observedSpanMs = options.observedSpanMs ?? Number.POSITIVE_INFINITY;
  }

  get size(): number {
    return this.points.length;
  }

  last(): TimelinePoint | undefined {
    return this.points[this.points.length - 1];
  }

  first(): TimelinePoint | undefined {
    return this.points[0];
  }

  /** Appends a point; a point not after the last one (the same counter update read twice) is ignored. */
  push(point: TimelinePoint): boolean {
    const last = this.last();
    if (last && point.tMs <= last.tMs) return false;
    this.points.push(point);
    if (point.powerW !== undefined && point.powerW > this.maxPowerW) this.maxPowerW = point.powerW;
    if (this.points.length > this.capacity) {
      const drop = Math.max(1, Math.floor(this.capacity / 10));
      this.points.splice(0, drop);
      this.dropped += drop;
    }
    return true;
  }

  /** The last point at or before t (the first point if t precedes it). */
  pointAtOrBefore(tMs: number): TimelinePoint | undefined {
    if (this.points.length === 0) return undefined;
    if (tMs < this.points[0]!.tMs) return this.points[0];
    return this.points[this.indexAtOrBefore(Math.min(tMs, this.last()!.tMs))];
  }

  /** Energy at instant t; undefined before the first point or when t is older than the timeline holds. */
  energyAt(tMs: number): EdgeEnergy | undefined {
    const pts = this.points;
    const n = pts.length;
    if (n === 0 || tMs < pts[0]!.tMs) return undefined;
    const last = pts[n - 1]!;
    if (tMs >= last.tMs) return this.extrapolate(last, tMs, n - 1);
    const i = this.indexAtOrBefore(tMs);
    const p0 = pts[i]!;
    if (p0.tMs === tMs) return this.exact(p0, i);
    const p1 = pts[i + 1]!;
    const span = p1.tMs - p0.tMs;
    const f = (tMs - p0.tMs) / span;
    const energyJ = p0.energyJ + f * (p1.energyJ - p0.energyJ);
    const uncertainMs = Math.max(p0.timeUncertaintyMs ?? 0, p1.timeUncertaintyMs ?? 0);
    let shape: number;
    let timing: number;
    if (span > this.observedSpanMs) {
      // Nothing seen inside: the energy at t lies between drawing the maximum power only before t and only after it.
      const lowJ = Math.max(p0.energyJ, p1.energyJ - (this.maxPowerW * (p1.tMs - tMs)) / 1000);
      const highJ = Math.min(p1.energyJ, p0.energyJ + (this.maxPowerW * (tMs - p0.tMs)) / 1000);
      shape = Math.max(energyJ - lowJ, highJ - energyJ, 0);
      timing = uncertainMs > 0 ? (this.maxPowerW * uncertainMs) / 1000 : 0;
    } else {
      this.powerRange(i);
      shape = Math.min(
        ((this.rangeHiW - this.rangeLoW) * ((tMs - p0.tMs) * (p1.tMs - tMs))) / span / 1000,
        Math.max(energyJ - p0.energyJ, p1.energyJ - energyJ),
      );
      // An update instant off by d moves the edge into a neighbouring interval for up to d: the highest power around counts.
      timing = (this.rangeHiW * uncertainMs) / 1000;
    }
    return {
      energyJ,
      edgeUncertaintyJ: shape + timing,
      cumulativeUncertaintyJ: p0.uncertaintyJ,
      kind: "interpolated",
      resets: p0.resets,
      segment: this.dropped + i,
    };
  }

  /** Mean power between two points, watts. */
  private meanPowerW(i: number): number | undefined {
    const a = this.points[i];
    const b = this.points[i + 1];
    return a && b ? ((b.energyJ - a.energyJ) / (b.tMs - a.tMs)) * 1000 : undefined;
  }

  /** powerRange's answer (fields, not an array: this runs for edges of every window, per device). */
  private rangeLoW = 0;
  private rangeHiW = 0;

  /**
   * The lowest and highest power around interval i: the interval's mean, its neighbours' means and the
   * instant powers at its ends. Power may have stepped between them anywhere inside the interval.
   */
  private powerRange(i: number): void {
    let lo = Infinity;
    let hi = -Infinity;
    for (let k = 0; k < 5; k++) {
      // k = 0, 1, 2: the means of intervals i, i - 1 and i + 1; k = 3, 4: the instant powers at points i, i + 1.
      const p =
        k === 0 ? this.meanPowerW(i) : k === 1 ? this.meanPowerW(i - 1) : k === 2 ? this.meanPowerW(i + 1) : this.points[i + k - 3]!.powerW;
      if (p === undefined) continue;
      lo = Math.min(lo, p);
      hi = Math.max(hi, p);
    }
    this.rangeLoW = lo;
    this.rangeHiW = hi;
  }

  /**
   * Past the last update: the last instant power carried on, with a bound that covers any power from 0 W
   * to the device's maximum over the time since the update (and the update instant's own uncertainty). A
   * smaller bound (the recent swing, say) is a guess: a step just after the update breaks it, and under
   * CPU load the time since the update grows to several periods.
   */
  private extrapolate(last: TimelinePoint, tMs: number, i: number): EdgeEnergy {
    const dtS = (tMs - last.tMs) / 1000;
    if (dtS === 0) return this.exact(last, i);
    const powerW = Math.max(0, last.powerW ?? this.meanPowerW(i - 1) ?? 0);
    const openS = dtS + (last.timeUncertaintyMs ?? 0) / 1000;
    return {
      energyJ: last.energyJ + powerW * dtS,
      edgeUncertaintyJ: Math.max(powerW, this.maxPowerW - powerW) * openS,
      cumulativeUncertaintyJ: last.uncertaintyJ,
      kind: "extrapolated",
      resets: last.resets,
      segment: this.dropped + i,
    };
  }

  private exact(p: TimelinePoint, i: number): EdgeEnergy {
    const powerW = p.powerW ?? this.meanPowerW(i - 1) ?? 0;
    return {
      energyJ: p.energyJ,
      edgeUncertaintyJ: (powerW * (p.timeUncertaintyMs ?? 0)) / 1000,
      cumulativeUncertaintyJ: p.uncertaintyJ,
      kind: "exact",
      resets: p.resets,
      segment: this.dropped + i,
    };
  }

  /** Binary search: the last point with tMs <= t (t within range). */
  private indexAtOrBefore(tMs: number): number {
    let lo = 0;
    let hi = this.points.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.points[mid]!.tMs <= tMs) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
