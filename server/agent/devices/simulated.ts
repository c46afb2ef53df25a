/**
 * A simulated GPU for demos on machines without one: an EnergySource named "simulated" with one device,
 * "gpu:0", whose power follows a deterministic profile (a slow sine between 90 W and 210 W around 150 W).
 * Every device and reading is marked simulated: its numbers are NOT measurements. It is only used when a
 * caller enables the fallback (carbonmon demo) and no real GPU was found.
 */
import type { Clock } from "../../shared/clock.js";
import { systemClock } from "../../shared/clock.js";
import type { BackendState, Device, EnergySource, ReadingSink } from "./energy-source.js";

const BASE_W = 150;
const SWING_W = 60;
const PERIOD_S = 10;

/** The profile's power at t seconds after start, watts. */
export function simulatedPowerW(tS: number): number {
  return BASE_W + SWING_W * Math.sin((2 * Math.PI * tS) / PERIOD_S);
}

/** The profile's exact energy from start to t seconds, joules (the integral of simulatedPowerW). */
export function simulatedEnergyJ(tS: number): number {
  return BASE_W * tS + ((SWING_W * PERIOD_S) / (2 * Math.PI)) * (1 - Math.cos((2 * Math.PI * tS) / PERIOD_S));
}

export class SimulatedSource implements EnergySource {
  readonly name = "simulated";
  private timer: NodeJS.Timeout | undefined;
  private push: (() => void) | undefined;
  private active = false;
  private readonly startMs: number;
  private readonly device: Device = {
    id: "gpu:0",
    domain: "gpu",
    index: 0,
    name: "Simulated GPU (not a measurement)",
    uuid: "GPU-00000000-0000-0000-0000-5157a7ed0000",
    hasEnergyCounter: true,
    powerLimitW: 300,
    maxPowerW: 300,
    status: "ok",
    simulated: true,
  };

  constructor(
    private readonly samplingPeriodMs: number,
    private readonly clock: Clock = systemClock,
    /** The period while idle (no window or stream open; it starts idle); default: samplingPeriodMs. */
    private readonly idlePeriodMs = samplingPeriodMs,
  ) {
    this.startMs = clock.nowMs();
  }

  state(): BackendState {
    return { name: "simulated", status: "ok", reason: "SIMULATED GPU: these numbers are not measurements" };
  }

  devices(): readonly Device[] {
    return [this.device];
  }

  start(sink: ReadingSink): void {
    this.push = (): void => {
      const tMs = this.clock.nowMs();
      const tS = (tMs - this.startMs) / 1000;
      sink([{ deviceId: this.device.id, tMs, counterJ: simulatedEnergyJ(tS), powerW: simulatedPowerW(tS) }]);
    };
    this.restart();
  }

  /** Like a real backend: a reading at once when going active, then the period of the new state. */
  setActive(active: boolean): void {
    if (active === this.active) return;
    this.active = active;
    if (this.push && this.timer !== undefined) this.restart(active);
  }

  private restart(readNow = true): void {
    clearInterval(this.timer);
    if (readNow) this.push!();
    this.timer = setInterval(this.push!, this.active ? this.samplingPeriodMs : this.idlePeriodMs);
    this.timer.unref();
  }

  stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.push = undefined;
    return Promise.resolve();
  }
}

/** The sources, plus a simulated GPU when asked for (CARBONMON_SIMULATED_GPU) and none of them has a GPU. */
export function withSimulatedGpu(
  sources: EnergySource[],
  config: { simulatedGpu: boolean; samplingPeriodMs: number; idleSamplingPeriodMs?: number },
  clock?: Clock,
): EnergySource[] {
  const hasGpu = sources.some((s) => s.devices().some((d) => d.domain === "gpu"));
  return config.simulatedGpu && !hasGpu
    ? [...sources, new SimulatedSource(config.samplingPeriodMs, clock, config.idleSamplingPeriodMs)]
    : sources;
}
