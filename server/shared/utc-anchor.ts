/**
 * UTC for instants of the agent's clock, following steps of the system clock.
 *
 * The agent measures on one monotonic time base (clock.ts: performance.timeOrigin + performance.now()),
 * aligned with UTC when the process started. A later step of the system clock (chrony's makestep, a VM
 * restored from a snapshot, a clock set by hand) moves UTC but not that time base, while NVML's stamps and
 * the intensity service's periods follow UTC. So UTC is re-anchored: the step between the system's wall
 * clock and the monotonic clock is re-measured on every conversion (two clock reads: cheap), and a change
 * of 100 ms or more (confirmed by the largest of a few more reads) re-anchors, with one log line.
 *
 * Only UTC labels move: durations stay differences of the monotonic time base, so a window's time_s (and
 * its end_time - begin_time, which are converted with one anchor) never goes backwards, whatever the step.
 */

export interface UtcAnchorOptions {
  /** The system's wall clock, epoch ms (default Date.now). */
  wallMs?: () => number;
  /** The system's monotonic clock, epoch-aligned at process start (default performance.timeOrigin + performance.now()). */
  monotonicMs?: () => number;
  /** Told of every re-anchoring: the step in ms (positive: the wall clock jumped forward). */
  onStep?: (stepMs: number, totalMs: number) => void;
}

/**
 * A change below this is not a step: Date.now()'s whole milliseconds, a thread preempted between the two
 * clock reads (tens of ms on a busy host), NTP's slewing. Steps are larger (ntpd steps from 128 ms,
 * chrony's makestep from its threshold, typically 0.1-1 s); labels never move for less.
 */
const STEP_THRESHOLD_MS = 100;
/** Reads that confirm a step: a preemption between a pair's two reads only lowers it, so the largest counts. */
const CONFIRMING_READS = 3;

export class UtcAnchor {
  /** Wall minus monotonic time now, as last anchored (0: the clock has not stepped since the process started). */
  private offsetMs = 0;
  private readonly wallMs: () => number;
  private readonly monotonicMs: () => number;
  private readonly onStep: ((stepMs: number, totalMs: number) => void) | undefined;
  /** Re-anchorings so far (callers that derived UTC instants before can tell theirs are stale). */
  steps = 0;

  constructor(options: UtcAnchorOptions = {}) {
    this.wallMs = options.wallMs ?? Date.now;
    this.monotonicMs = options.monotonicMs ?? (() => performance.timeOrigin + performance.now());
    this.onStep = options.onStep;
  }

  /** The current step of UTC against the agent's time base, ms (re-anchored first if the wall clock stepped). */
  get stepMs(): number {
    this.check();
    return this.offsetMs;
  }

  /** UTC (epoch ms) of an instant of the agent's clock, with the current anchor. */
  toUtcMs(agentMs: number): number {
    return agentMs + this.stepMs;
  }

  /** The agent-clock instant of a UTC instant, with the current anchor. */
  fromUtcMs(utcMs: number): number {
    return utcMs - this.stepMs;
  }

  /** Re-measures the step; re-anchors when it changed beyond the wall clock's resolution. */
  check(): void {
    let measured = this.wallMs() - this.monotonicMs();
    if (Math.abs(measured - this.offsetMs) <= STEP_THRESHOLD_MS) return;
    for (let i = 0; i < CONFIRMING_READS; i++) measured = Math.max(measured, this.wallMs() - this.monotonicMs());
    if (Math.abs(measured - this.offsetMs) <= STEP_THRESHOLD_MS) return;
    const precise = this.precise(measured);
    const stepMs = precise - this.offsetMs;
    this.offsetMs = precise;
    this.steps++;
    this.onStep?.(stepMs, precise);
  }

  /**
   * With the real wall clock, the step to well under a millisecond: read the monotonic clock the moment
   * Date.now() ticks over (a wait of at most 1 ms, only when the clock has stepped).
   */
  private precise(measured: number): number {
    if (this.wallMs !== Date.now) return measured;
    const start = Date.now();
    let tick = start;
    while (tick === start) tick = Date.now();
    return tick - this.monotonicMs();
  }
}
