/**
 * A window's energy when the agent restarted while it was open. Each agent run keeps its own timeline
 * (cumulative energy from 0), so a window that began in one run and ends in a later one is chained: the
 * energy inside each run from its timeline, and between runs from the raw hardware counter, which keeps
 * counting while the agent is down (NVML: never wraps, resets on a driver reload; RAPL: wraps, so wraps
 * missed while down are inferred from elapsed time and the power drawn before). Pure.
 */
import { counterDelta, inferWraps } from "./counter.js";

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
  const estimateJ = Math.max(d.deltaJ, (from.powerW ?? 0) * elapsedS);
  return { ...result, energyJ: estimateJ, uncertaintyJ: estimateJ - d.deltaJ, resets: 1 };
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
