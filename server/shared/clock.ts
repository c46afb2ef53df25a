/**
 * Time, injectable so that tests can drive it. carbonmon keeps one time base: milliseconds that are
 * monotonic (never jump with NTP or a changed wall clock) yet aligned with the Unix epoch at process start
 * (performance.timeOrigin + performance.now()). Durations are differences of it; UTC timestamps on the
 * wire are made from it.
 */
export interface Clock {
  /** Monotonic milliseconds, epoch-aligned at process start, sub-millisecond resolution. */
  nowMs(): number;
}

export const systemClock: Clock = {
  nowMs: () => performance.timeOrigin + performance.now(),
};

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  constructor(private t = Date.UTC(2024, 10, 30, 12, 0, 0)) {}
  nowMs(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(ms: number): void {
    this.t = ms;
  }
}
