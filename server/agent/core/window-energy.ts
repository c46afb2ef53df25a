/**
 * How a window's energy is computed, in one place. Pure: numbers and timestamps in, results out.
 *
 * 1. Readings become a timeline (integrate): each device's cumulative energy since the agent started,
 *    from the hardware counter's deltas (counter.ts: wraps removed), or from power (trapezoids) where a
 *    device has no counter.
 * 2. A window's edge is an instant; its energy there is interpolated on the timeline between counter
 *    updates, with a bound (timeline.ts).
 * 3. Within one agent run, the window's energy is the difference of its two edges (energyInRun).
 * 4. Across agent restarts each run has its own timeline, so the window is chained (chain): inside each
 *    run from its timeline, between runs from the raw hardware counter, which keeps counting while the
 *    agent is down (NVML: never wraps, resets on a driver reload; RAPL: wraps, so wraps missed while down
 *    are inferred from elapsed time and the power drawn before).
 * 5. For carbon, a window's energy is split at marks (pieceMarks): its edges, the boundaries logged
 *    inside it, and each run's first and last checkpoint (core/carbon.ts splitAtMarks).
 *
 * One counter-reset policy (resetEstimate) serves a reset seen between two readings and one seen across
 * downtime.
 */
import { counterDelta, inferWraps } from "./counter.js";
import { energyBetween, type EdgeEnergy, type TimelinePoint } from "./timeline.js";
import type { Mark } from "./carbon.js";

/**
 * The one counter-reset policy. A counter that went backwards restarted (driver reload, GPU reset)
 * somewhere in an interval of elapsedS: only the energy counted since the restart (countedJ, the new raw
 * value) is known; the energy before the restart is lost and lies between 0 and about powerW x elapsedS.
 * The estimate is the larger of the two figures; its bound covers both ends of that range.
 */
export function resetEstimate(countedJ: number, powerW: number, elapsedS: number): { energyJ: number; uncertaintyJ: number } {
  const byPowerJ = Math.max(0, powerW) * Math.max(0, elapsedS);
  const energyJ = Math.max(countedJ, byPowerJ);
  return { energyJ, uncertaintyJ: Math.max(energyJ - countedJ, countedJ + byPowerJ - energyJ) };
}

/** One device at one instant of one run. */
export interface Anchor {
  tMs: number;
  /** Cumulative energy in that run's timeline, joules. */
  cumJ: number;
  /** The raw hardware counter then, joules; undefined for devices without a counter. */
  rawJ?: number;
  powerW?: number;
}

/** What one run saw of a device: its first reading and its last checkpoint. */
export interface RunSpan {
  runId: number;
  first: Anchor;
  last: Anchor;
}

export interface ChainResult {
  energyJ: number;
  uncertaintyJ: number;
  /** RAPL wraps assumed during downtime. */
  wrapsInferred: number;
  /** NVML counter resets seen across downtime. */
  resets: number;
  /** Downtime bridged without any counter (power x time). */
  estimatedJ: number;
}

export interface ChainInput {
  /** Where the window began (in runs[0]), or the latest checkpoint after that if later. */
  begin: Anchor;
  /** The runs from the one the window began in to the current one, oldest first. */
  runs: RunSpan[];
  /** Where the window ends, in the last run. */
  end: Anchor;
  counterRangeJ?: number;
}

/** Energy across downtime between two runs, from raw counters (or power when there is none). */
export function bridge(from: Anchor, to: Anchor, counterRangeJ?: number): ChainResult {
  const elapsedS = Math.max(0, (to.tMs - from.tMs) / 1000);
  const result: ChainResult = { energyJ: 0, uncertaintyJ: 0, wrapsInferred: 0, resets: 0, estimatedJ: 0 };
  if (from.rawJ === undefined || to.rawJ === undefined) {
    const powerW = ((from.powerW ?? 0) + (to.powerW ?? from.powerW ?? 0)) / 2;
    return { ...result, energyJ: powerW * elapsedS, uncertaintyJ: powerW * elapsedS, estimatedJ: powerW * elapsedS };
  }
  if (counterRangeJ !== undefined) {
    const { deltaJ, wraps } = inferWraps(from.rawJ, to.rawJ, counterRangeJ, elapsedS, from.powerW ?? 0);
    return { ...result, energyJ: deltaJ, wrapsInferred: wraps, uncertaintyJ: wraps > 0 ? counterRangeJ / 2 : 0 };
  }
  const d = counterDelta(from.rawJ, to.rawJ);
  if (d.event !== "reset") return { ...result, energyJ: d.deltaJ };
  const { energyJ, uncertaintyJ } = resetEstimate(d.deltaJ, from.powerW ?? 0, elapsedS);
  return { ...result, energyJ, uncertaintyJ, resets: 1 };
}

/** Energy from begin to end across every run in between. */
export function chain(input: ChainInput): ChainResult {
  const total: ChainResult = { energyJ: 0, uncertaintyJ: 0, wrapsInferred: 0, resets: 0, estimatedJ: 0 };
  const add = (r: ChainResult): void => {
    total.energyJ += r.energyJ;
    total.uncertaintyJ += r.uncertaintyJ;
    total.wrapsInferred += r.wrapsInferred;
    total.resets += r.resets;
    total.estimatedJ += r.estimatedJ;
  };
  let at = input.begin;
  input.runs.forEach((run, i) => {
    const isLast = i === input.runs.length - 1;
    const until = isLast ? input.end : run.last.tMs >= at.tMs ? run.last : at;
    add({ energyJ: Math.max(0, until.cumJ - at.cumJ), uncertaintyJ: 0, wrapsInferred: 0, resets: 0, estimatedJ: 0 });
    const next = input.runs[i + 1];
    if (next) {
      add(bridge(until, next.first, input.counterRangeJ));
      at = next.first;
    }
  });
  return total;
}

/** One reading as integration needs it. */
export interface RawReading {
  tMs: number;
  counterJ?: number;
  powerW?: number;
  timeUncertaintyMs?: number;
}

/** What integration carries from one reading to the next. */
export interface IntegrationState {
  last: TimelinePoint | undefined;
  lastRawJ: number | undefined;
  lastPowerW: number | undefined;
}

/**
 * The timeline point a reading adds (undefined: it adds none: not after the last point, or no figure).
 * A counter's delta is added (a reset estimated by resetEstimate); without a counter, power is integrated
 * by trapezoids, with half the change in power over the interval as the bound.
 */
export function integrate(state: IntegrationState, r: RawReading, counterRangeJ?: number): TimelinePoint | undefined {
  const { last } = state;
  const dtS = last ? (r.tMs - last.tMs) / 1000 : 0;
  if (last && dtS <= 0) return undefined;
  let energyJ = last?.energyJ ?? 0;
  let uncertaintyJ = last?.uncertaintyJ ?? 0;
  let resets = last?.resets ?? 0;
  if (r.counterJ !== undefined) {
    if (state.lastRawJ !== undefined) {
      const d = counterDelta(state.lastRawJ, r.counterJ, counterRangeJ);
      if (d.event === "reset") {
        const e = resetEstimate(d.deltaJ, state.lastPowerW ?? r.powerW ?? 0, dtS);
        energyJ += e.energyJ;
        uncertaintyJ += e.uncertaintyJ;
        resets++;
      } else energyJ += d.deltaJ;
    }
  } else if (r.powerW !== undefined && last) {
    const prevW = state.lastPowerW ?? r.powerW;
    energyJ += ((prevW + r.powerW) / 2) * dtS;
    uncertaintyJ += (Math.abs(r.powerW - prevW) / 2) * dtS;
  } else if (r.powerW === undefined) return undefined;
  const powerW = r.powerW ?? (last && dtS > 0 ? (energyJ - last.energyJ) / dtS : undefined);
  return {
    tMs: r.tMs,
    energyJ,
    uncertaintyJ,
    resets,
    ...(powerW !== undefined ? { powerW } : {}),
    ...(r.timeUncertaintyMs ? { timeUncertaintyMs: r.timeUncertaintyMs } : {}),
    ...(r.counterJ !== undefined ? { rawJ: r.counterJ } : {}),
  };
}

/** A device's energy over an interval, with what was approximated. */
export interface IntervalEnergy {
  energyJ: number;
  uncertaintyJ: number;
  /** No counter update fell inside the interval: energy is mean or instant power x time. */
  shortWindow: boolean;
  /** Energy integrated from power (no energy counter). */
  powerIntegration: boolean;
  /** The counter restarted inside the interval. */
  counterReset: boolean;
  /** The end lies after the latest counter update. */
  extrapolated: boolean;
}

/** A window's energy within one run: from its begin edge to its end edge on the same timeline. */
export function energyInRun(e0: EdgeEnergy, e1: EdgeEnergy, hasEnergyCounter: boolean): IntervalEnergy {
  const { energyJ, uncertaintyJ } = energyBetween(e0, e1);
  return {
    energyJ,
    uncertaintyJ,
    shortWindow: e0.segment === e1.segment && e1.kind !== "exact",
    powerIntegration: !hasEnergyCounter,
    counterReset: e1.resets > e0.resets,
    extrapolated: e1.kind === "extrapolated",
  };
}

/** A window's begin as stored with it: its edge, in the run that resolved it, and the raw counter then. */
export interface StoredBegin {
  tMs: number;
  runId: number;
  energyJ: number;
  edgeUncertaintyJ: number;
  rawJ: number | undefined;
  powerW: number | undefined;
}

export interface AcrossRestartsInput {
  begin: StoredBegin;
  /** What each earlier run saw of the device (checkpoints), from the begin's run on; this run excluded. */
  earlierRuns: RunSpan[];
  /** This run: its id and span, the anchor and edge at the window's end. */
  current: RunSpan;
  end: Anchor;
  endEdge: EdgeEnergy;
  hasEnergyCounter: boolean;
  counterRangeJ?: number;
}

/** A window's energy when it began in an earlier agent run: chained through every run since. */
export function energyAcrossRestarts(x: AcrossRestartsInput): IntervalEnergy & { wrapsInferred: number } {
  const beginAnchor: Anchor = {
    tMs: x.begin.tMs,
    cumJ: x.begin.energyJ,
    ...(x.begin.rawJ !== undefined ? { rawJ: x.begin.rawJ } : {}),
    ...(x.begin.powerW !== undefined ? { powerW: x.begin.powerW } : {}),
  };
  const runs = [...x.earlierRuns];
  if (runs[0]?.runId !== x.begin.runId) runs.unshift({ runId: x.begin.runId, first: beginAnchor, last: beginAnchor });
  runs.push(x.current);
  const c = chain({ begin: beginAnchor, runs, end: x.end, ...(x.counterRangeJ !== undefined ? { counterRangeJ: x.counterRangeJ } : {}) });
  return {
    energyJ: c.energyJ,
    uncertaintyJ: c.uncertaintyJ + x.begin.edgeUncertaintyJ + x.endEdge.edgeUncertaintyJ,
    shortWindow: false,
    powerIntegration: !x.hasEnergyCounter || c.estimatedJ > 0,
    counterReset: c.resets > 0,
    extrapolated: x.endEdge.kind === "extrapolated",
    wrapsInferred: c.wrapsInferred,
  };
}

/**
 * The marks a window's energy on one device is split at for carbon: its begin, the boundaries logged
 * inside it, its end; across restarts also each run's first and last checkpoint inside the window, so only
 * the downtime itself is spread evenly. Sorted by time.
 */
export function pieceMarks(begin: Mark, logged: readonly Mark[], end: Mark, runs: readonly RunSpan[]): Mark[] {
  const marks: Mark[] = [begin, ...logged, end];
  if (begin.runId === end.runId) return marks;
  for (const r of runs) {
    for (const a of [r.first, r.last]) if (a.tMs > begin.tMs && a.tMs < end.tMs) marks.push({ tMs: a.tMs, runId: r.runId, cumJ: a.cumJ });
  }
  return marks.sort((x, y) => x.tMs - y.tMs);
}
