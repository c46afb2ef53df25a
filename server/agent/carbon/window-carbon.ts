/**
 * Carbon for the window manager: the boundary log, a window's energy split into pieces at its marks,
 * pricing at EndWindow, and the background loop that asks again for pending or provisional grams (with a
 * doubling delay) and replaces the stored figures. Only used when an intensity service is configured.
 */
import type { UtcAnchor } from "../../shared/utc-anchor.js";
import type { Clock } from "../../shared/clock.js";
import type { AgentConfig } from "../../shared/config.js";
import type { Logger } from "../../shared/log.js";
import { BoundaryLog } from "./boundary-log.js";
import { applyCarbon, deviceName, type CarbonFigures, type CarbonOutcome } from "./outcome.js";
import type { CarbonPricer, EnergyPiece } from "./pricer.js";
import { nextRetryAtMs, REPRICE_BATCH, roundEveryMs } from "./repricing.js";
import { BOUNDARY_PERIOD_MS, splitAtMarks } from "../core/carbon.js";
import { pieceMarks, type RunSpan } from "../core/window-energy.js";
import type { Sampler } from "../energy/sampler.js";
import type { ResultCodec, WindowResult } from "../windows/result.js";
import type { SelectedDevice } from "../windows/selection.js";
import { decodePieces, RecordError } from "../storage/records.js";
import type { AgentStore } from "../storage/store.js";

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
  codec: ResultCodec;
  clock: Clock;
  utc: UtcAnchor;
  log: Logger;
}

export class WindowCarbon {
  private readonly boundaries: BoundaryLog;
  private readonly timer: NodeJS.Timeout;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly deps: WindowCarbonDeps) {
    this.boundaries = new BoundaryLog(deps);
    const again = () =>
      this.refresh().catch((err: unknown) => deps.log.error({ err }, "carbon: asking again for pending grams failed; next round later"));
    this.timer = setInterval(again, roundEveryMs(deps.config.carbonRetryMs)).unref();
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
    // Across restarts: every run since the begin's (stored checkpoints), then this run's span.
    const runs: RunSpan[] = [];
    if (begin.runId !== store.runId) {
      runs.push(...store.runsSince(device.deviceId, begin.runId).filter((r) => r.runId !== store.runId));
      const span = sampler.span(device.deviceId);
      if (span) runs.push({ runId: store.runId, ...span });
    }
    const marks = pieceMarks(
      { tMs: begin.tMs, runId: begin.runId, cumJ: begin.energyJ },
      this.boundaries.marksBetween(device.deviceId, begin.tMs, endMs),
      { tMs: endMs, runId: store.runId, cumJ: end?.energyJ ?? begin.energyJ + energyJ },
      runs,
    );
    const name = deviceName(device.domain, device.index);
    const pieces = splitAtMarks(marks, energyJ).map((p) => ({ ...p, device: name }));
    return pieces.length > 0 ? pieces : [{ startMs: begin.tMs, endMs, energyJ, device: name }];
  }

  /** Prices a window just stored as ended; stores and returns it with its carbon figures, encoded. */
  async price(id: number, result: WindowResult, pieces: readonly EnergyPiece[]): Promise<{ result: WindowResult; bytes: Uint8Array }> {
    const outcome = await this.deps.pricer.price(pieces);
    const priced = { ...result, carbon: carbonAfter(result.carbon, outcome) };
    return { result: priced, bytes: this.save(id, priced, outcome, 0) };
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
    for (const w of store.carbonDue(clock.nowMs(), REPRICE_BATCH)) {
      const stored = this.deps.codec.decode(w.result!);
      let pieces: EnergyPiece[];
      try {
        pieces = decodePieces(w.segments ?? "[]");
      } catch (err) {
        if (!(err instanceof RecordError)) throw err;
        store.stopRepricing(w.id, err.message);
        continue;
      }
      const outcome = await pricer.price(pieces);
      if (!store.isOpen) return;
      this.save(w.id, { ...stored, carbon: carbonAfter(stored.carbon, outcome) }, outcome, w.carbonTries + 1);
      if (outcome.status === "pending") {
        log.debug({ key: w.key }, "carbon: the intensity service still cannot price; next round later");
        return;
      }
    }
  }

  /** Stores a window's result with its carbon figures, and when to ask again (repricing.ts). */
  private save(id: number, result: WindowResult, outcome: CarbonOutcome, tries: number): Uint8Array {
    const { store, clock, config, log, codec } = this.deps;
    const bytes = codec.encode(result);
    try {
      store.setCarbon(id, bytes, nextRetryAtMs(outcome.status, tries, clock.nowMs(), config.carbonRetryMs));
    } catch (err) {
      log.error({ err }, "carbon: storing a window's grams failed");
    }
    return bytes;
  }
}

/**
 * A window's carbon figures after an attempt: the outcome's grams, unless the service could not answer,
 * in which case grams already stored (provisional) stay as they are and pending ones get the new reason.
 */
function carbonAfter(current: CarbonFigures, outcome: CarbonOutcome): CarbonFigures {
  if (outcome.status !== "pending") return applyCarbon(outcome);
  return current.status === "pending" ? { ...current, reason: outcome.reason } : current;
}
