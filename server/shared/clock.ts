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

/**
 * The system clock plus a shift kept in shared memory, so that the agent's main thread and its NVML
 * worker read one time base. Tests move the shift forward to let a host live through hours in seconds
 * (the fake NVML library moves its own clock by the same amount). Production uses systemClock.
 */
export class ShiftedClock implements Clock {
  readonly buffer: SharedArrayBuffer;
  private readonly shift: Float64Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(8)) {
    this.buffer = buffer;
    this.shift = new Float64Array(buffer, 0, 1);
  }

  nowMs(): number {
    return systemClock.nowMs() + this.shift[0]!;
  }

  get shiftMs(): number {
    return this.shift[0]!;
  }

  set shiftMs(ms: number) {
    this.shift[0] = ms;
  }
}

/** The shared memory behind a clock's shift, for worker threads (undefined: the plain system clock). */
export function shiftBufferOf(clock: Clock): SharedArrayBuffer | undefined {
  return clock instanceof ShiftedClock ? clock.buffer : undefined;
}
