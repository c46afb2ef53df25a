/**
 * Lets a host live through hours in seconds. One ShiftedClock drives the agent (main thread and NVML
 * worker) and, where a test wants it, the intensity service; every attached fake libnvidia-ml.so.1 moves
 * its own clock by the same amount (fake_nvml_shift_clock), so its counter holds the profile's energy
 * over the skipped time. Jumps only go forward, like time.
 */
import koffi from "koffi";
import { ShiftedClock, systemClock } from "../../server/shared/clock.js";
import type { Segment } from "./fake-nvml.js";

export class TimeTravel {
  readonly clock = new ShiftedClock();
  private readonly fakes: Array<(shiftMs: number) => void> = [];

  /** Starts with the clock reading startMs. */
  constructor(startMs: number) {
    this.clock.shiftMs = startMs - systemClock.nowMs();
  }

  now(): number {
    return this.clock.nowMs();
  }

  /** Moves a fake NVML library's clock with this one (the same file the agent loads: one instance per process). */
  attach(libraryPath: string): void {
    const shift = koffi.load(libraryPath).func("void fake_nvml_shift_clock(double)") as (ms: number) => void;
    shift(this.clock.shiftMs);
    this.fakes.push(shift);
  }

  /** Jumps forward to tMs; the fakes first, so that no reading is stamped before its value exists. */
  jumpTo(tMs: number): void {
    const shiftMs = this.clock.shiftMs + (tMs - this.clock.nowMs());
    if (shiftMs < this.clock.shiftMs) throw new Error("time travel goes forward only");
    for (const shift of this.fakes) shift(shiftMs);
    this.clock.shiftMs = shiftMs;
  }

  /** Waits (real time) until the clock reads tMs. */
  async until(tMs: number): Promise<void> {
    for (let left = tMs - this.now(); left > 0; left = tMs - this.now()) await new Promise((r) => setTimeout(r, Math.min(left, 50)));
  }
}

/**
 * A profile (epoch at a period boundary) whose power is `quietW` within marginMs of every period boundary
 * and levelW(k) in the middle of period k: energy per period then differs from a uniform split, and edges,
 * boundaries and jumps placed inside the margins see one power whatever the clocks' tiny offsets.
 */
export function steppedProfile(
  periodMs: number,
  marginMs: number,
  periods: number,
  quietW: number,
  levelW: (k: number) => number,
): Segment[] {
  const out: Segment[] = [];
  for (let k = 0; k < periods; k++) {
    out.push({ powerW: quietW, ms: marginMs }, { powerW: levelW(k), ms: periodMs - 2 * marginMs }, { powerW: quietW, ms: marginMs });
  }
  return out;
}
