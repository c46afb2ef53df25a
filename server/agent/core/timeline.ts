/**
 * One device's energy over time: a bounded list of points (time, cumulative energy since the sampler
 * started) and the answer to "how much energy had it used at instant t?". Pure: no I/O, no clock.
 *
 * Between two counter updates the energy is interpolated linearly. Its error bound comes from how much
 * the power can have changed inside the interval (the neighbouring intervals' mean powers and the instant
 * power at both ends): a step of size dP anywhere inside an interval of length T puts the interpolation at
 * most dP*(t-t0)*(t1-t)/T away from the truth at t.
 * After the last update the energy is extrapolated with the last instant power. Where a point's instant is
 * itself estimated (+/- timeUncertaintyMs), the edge's bound grows by power x that uncertainty.
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

export class Timeline {
  private points: TimelinePoint[] = [];
  /** Absolute number of points dropped from the front. */
  private dropped = 0;

  constructor(private readonly capacity = 20_000) {}

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
    const shape = Math.min(
      (this.powerSwingW(i) * ((tMs - p0.tMs) * (p1.tMs - tMs))) / span / 1000,
      Math.max(energyJ - p0.energyJ, p1.energyJ - energyJ),
    );
    const timing = (this.meanPowerW(i)! * Math.max(p0.timeUncertaintyMs ?? 0, p1.timeUncertaintyMs ?? 0)) / 1000;
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

  /**
   * How far power may have moved inside interval i: the spread of the interval's mean, its neighbours'
   * means and the instant powers at its ends (a step from the lowest to the highest of them).
   */
  private powerSwingW(i: number): number {
    // Without arrays or closures: this runs for edges of every window, per device.
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
    return hi - lo;
  }

  private extrapolate(last: TimelinePoint, tMs: number, i: number): EdgeEnergy {
    const dtS = (tMs - last.tMs) / 1000;
    if (dtS === 0) return this.exact(last, i);
    const powerW = last.powerW ?? this.meanPowerW(i - 1) ?? 0;
    // The largest of 5 % of the power and how far the last two intervals' means were from it.
    const m1 = this.meanPowerW(i - 1);
    const m2 = this.meanPowerW(i - 2);
    let swingW = 0.05 * powerW;
    if (m1 !== undefined) swingW = Math.max(swingW, Math.abs(m1 - powerW));
    if (m2 !== undefined) swingW = Math.max(swingW, Math.abs(m2 - powerW));
    return {
      energyJ: last.energyJ + powerW * dtS,
      edgeUncertaintyJ: swingW * dtS + (powerW * (last.timeUncertaintyMs ?? 0)) / 1000,
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
