/**
 * Carbon for the window manager: the boundary log, a window's energy split into pieces at its marks,
 * pricing at EndWindow, and the background loop that asks again for pending or provisional grams (with a
 * doubling delay) and replaces the stored figures. Only used when an intensity service is configured.
 */
import { CarbonStatus, type Measurement } from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import type { Clock } from "../../shared/clock.js";
import type { AgentConfig } from "../../shared/config.js";
import type { Logger } from "../../shared/log.js";
import { BoundaryLog } from "./boundary-log.js";
import { applyCarbon, deviceName, type CarbonOutcome, type CarbonPricer, type EnergyPiece } from "./pricer.js";
import { BOUNDARY_PERIOD_MS, splitAtMarks, type Mark } from "../core/carbon.js";
import type { Sampler } from "../energy/sampler.js";
import type { SelectedDevice } from "../windows/selection.js";
import { decodeResult, encodeResult } from "../api/measurement-codec.js";
import type { AgentStore } from "../storage/store.js";

/** Windows whose grams are asked for again per round of the background loop. */
const BATCH = 50;
const MAX_PENDING_RETRY_MS = 5 * 60_000;
const MAX_PROVISIONAL_RETRY_MS = 3600_000;

/** Where a window's energy on one device starts: its begin edge, in the run that resolved it. */
export interface PieceStart {
  tMs: number;
  runId: number;
  energyJ: number;
}

export interface WindowCarbonDeps {
  config: Pick<AgentConfig, "carbonRetryMs">;
  sampler: Sampler;
  pricer: CarbonPricer;
  store: AgentStore;
  clock: Clock;
  log: Logger;
}

export class WindowCarbon {
  private readonly boundaries: BoundaryLog;
  private readonly timer: NodeJS.Timeout;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly deps: WindowCarbonDeps) {
    this.boundaries = new BoundaryLog(deps);
    const again = () => this.refresh().catch((err: unknown) => deps.log.error({ err }, "carbon: asking again for pending grams failed; next round later"));
    this.timer = setInterval(again, Math.min(deps.config.carbonRetryMs, 60_000)).unref();
  }

  close(): void {
    this.boundaries.close();
    clearInterval(this.timer);
  }

  /**
   * One device's energy in a window, split at the logged boundaries. Across agent restarts, each run's
   * first and last checkpoint are marks too, so only the downtime itself is spread evenly.
   */
  pieces(device: SelectedDevice, begin: PieceStart, endMs: number, energyJ: number): EnergyPiece[] {
    const { sampler, store } = this.deps;
    const end = sampler.energyAt(device.deviceId, endMs);
    const marks: Mark[] = [
      { tMs: begin.tMs, runId: begin.runId, cumJ: begin.energyJ },
      ...this.boundaries.marksBetween(device.deviceId, begin.tMs, endMs),
      { tMs: endMs, runId: store.runId, cumJ: end?.energyJ ?? begin.energyJ + energyJ },
    ];
    if (begin.runId !== store.runId) {
      const span = sampler.span(device.deviceId);
      const runs = [...store.runsSince(device.deviceId, begin.runId).filter((r) => r.runId !== store.runId), ...(span ? [{ runId: store.runId, ...span }] : [])];
      for (const r of runs) {
        for (const a of [r.first, r.last]) if (a.tMs > begin.tMs && a.tMs < endMs) marks.push({ tMs: a.tMs, runId: r.runId, cumJ: a.cumJ });
      }
      marks.sort((x, y) => x.tMs - y.tMs);
    }
    const name = deviceName(device.domain, device.index);
    const pieces = splitAtMarks(marks, energyJ).map((p) => ({ ...p, device: name }));
    return pieces.length > 0 ? pieces : [{ startMs: begin.tMs, endMs, energyJ, device: name }];
  }

  /** Prices a window just stored as ended, fills its Measurement and stores the figures. */
  async price(id: number, measurement: Measurement, pieces: readonly EnergyPiece[]): Promise<void> {
    const outcome = await this.deps.pricer.price(pieces);
    if (outcome.status === CarbonStatus.CARBON_STATUS_PENDING) measurement.carbonStatusReason = outcome.reason;
    else applyCarbon(measurement, outcome);
    this.save(id, measurement, outcome, 0);
  }

  /** Asks again for the grams of ended windows that are pending or provisional (one round at a time). */
  refresh(): Promise<void> {
    this.refreshing ??= this.round().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** Deletes logged boundaries that no open window reaches back to (ended windows keep their pieces). */
  purgeBefore(oldestOpenMs: number): void {
    this.boundaries.purgeBefore(oldestOpenMs - BOUNDARY_PERIOD_MS);
  }

  private async round(): Promise<void> {
    const { store, pricer, clock, log } = this.deps;
    for (const w of store.carbonDue(clock.nowMs(), BATCH)) {
      const measurement = decodeResult(w.result!);
      const outcome = await pricer.price(JSON.parse(w.segments ?? "[]") as EnergyPiece[]);
      if (!store.isOpen) return;
      if (outcome.status !== CarbonStatus.CARBON_STATUS_PENDING) applyCarbon(measurement, outcome);
      else if (measurement.carbonStatus === CarbonStatus.CARBON_STATUS_PENDING) measurement.carbonStatusReason = outcome.reason;
      // Grams already stored (provisional) stay as they are while the service cannot answer.
      this.save(w.id, measurement, outcome, w.carbonTries + 1);
      if (outcome.status === CarbonStatus.CARBON_STATUS_PENDING) {
        log.debug({ key: w.key }, "carbon: the intensity service still cannot price; next round later");
        return;
      }
    }
  }

  /** Stores a window's carbon figures and when to ask again: never once final, else after a doubling delay. */
  private save(id: number, measurement: Measurement, outcome: CarbonOutcome, tries: number): void {
    const { store, clock, config, log } = this.deps;
    const maxMs = outcome.status === CarbonStatus.CARBON_STATUS_PENDING ? MAX_PENDING_RETRY_MS : MAX_PROVISIONAL_RETRY_MS;
    const nextMs = outcome.status === CarbonStatus.CARBON_STATUS_FINAL ? null : clock.nowMs() + Math.min(config.carbonRetryMs * 2 ** Math.min(tries, 30), maxMs);
    try {
      store.setCarbon(id, encodeResult(measurement), nextMs);
    } catch (err) {
      log.error({ err }, "carbon: storing a window's grams failed");
    }
  }
}
