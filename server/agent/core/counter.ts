/**
 * Deltas of hardware energy counters. RAPL counters wrap at a known range; NVML counters never wrap but
 * restart from 0 when the driver reloads or the GPU resets. Pure: numbers in, numbers out.
 */
export type CounterEvent = "none" | "wrap" | "reset";

export interface CounterDelta {
  deltaJ: number;
  event: CounterEvent;
}

/**
 * The energy between two raw readings. With a range (RAPL), a decrease is one wrap:
 * (range - prev) + cur. Without one (NVML), a decrease is a reset and only the energy counted since the
 * restart (cur) is known; the caller estimates the rest.
 */
export function counterDelta(prevJ: number, curJ: number, rangeJ?: number): CounterDelta {
  if (curJ >= prevJ) return { deltaJ: curJ - prevJ, event: "none" };
  if (rangeJ !== undefined && prevJ <= rangeJ) return { deltaJ: rangeJ - prevJ + curJ, event: "wrap" };
  return { deltaJ: curJ, event: "reset" };
}

/**
 * How long a counter of this range can go unread at this power before a wrap could be missed; read at
 * least twice as often.
 */
export function wrapSafePeriodMs(rangeJ: number, maxPowerW: number): number {
  return (rangeJ / (2 * maxPowerW)) * 1000;
}

/**
 * Wraps that must have happened while nobody was reading (e.g. the agent was down): the observed delta is
 * ambiguous by whole ranges, so choose the number of wraps that brings the mean power closest to what the
 * zone drew before. Returns the corrected delta and the number of extra wraps assumed.
 */
export function inferWraps(
  prevJ: number,
  curJ: number,
  rangeJ: number,
  elapsedS: number,
  expectedPowerW: number,
): { deltaJ: number; wraps: number } {
  const base = curJ >= prevJ ? curJ - prevJ : rangeJ - prevJ + curJ;
  const wraps = Math.max(0, Math.round((expectedPowerW * elapsedS - base) / rangeJ));
  return { deltaJ: base + wraps * rangeJ, wraps };
}
