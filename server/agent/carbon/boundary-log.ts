/**
 * The boundary log: every device's cumulative energy at each 5-minute UTC boundary, recorded once for all
 * windows as soon as every device has a reading after the boundary (so the value is interpolated, not
 * extrapolated), and persisted with the windows. A window's energy is then split exactly at any provider's
 * period boundaries (5 min, 30 min, 1 h), whatever the window's length and across agent restarts.
 */
import type { Clock } from "../../shared/clock.js";
import type { UtcAnchor } from "../../shared/utc-anchor.js";
import type { Logger } from "../../shared/log.js";
import { BOUNDARY_PERIOD_MS, boundariesBetween, boundaryAfter, type Mark } from "../core/carbon.js";
import type { Sampler } from "../energy/sampler.js";
import type { AgentStore, BoundaryRow } from "../storage/store.js";

/** A boundary that some device still has no reading after is recorded anyway after this long. */
const STALE_MS = 10_000;
/** Marks kept in memory per device (a day), so that ending a window seldom queries the database. */
const KEPT_PER_DEVICE = 86_400_000 / BOUNDARY_PERIOD_MS;

export interface BoundaryDeps {
  sampler: Sampler;
  store: AgentStore;
  clock: Clock;
  /** Boundaries are UTC instants: their place on the agent's clock moves when the system clock steps. */
  utc: UtcAnchor;
  log: Logger;
}

export class BoundaryLog {
  /** The next boundary to record. */
  private nextMs: number;
  private waitingSinceMs: number | undefined;
  /** This run's recorded marks per device, oldest first; complete for windows that begin at recentFromMs or later. */
  private readonly recent = new Map<string, Mark[]>();
  private recentFromMs: number;
  private readonly unsubscribe: () => void;
  /** The UTC anchor's re-anchorings when nextMs was placed. */
  private anchoredAt: number;

  constructor(private readonly deps: BoundaryDeps) {
    this.recentFromMs = deps.clock.nowMs();
    this.nextMs = this.nextBoundaryAfter(this.recentFromMs);
    this.anchoredAt = deps.utc.steps;
    this.unsubscribe = deps.sampler.onUpdate(() => this.record());
  }

  /** The first UTC boundary after an instant of the agent's clock, on the agent's clock. */
  private nextBoundaryAfter(agentMs: number): number {
    const { utc } = this.deps;
    return utc.fromUtcMs(boundaryAfter(utc.toUtcMs(agentMs)));
  }

  close(): void {
    this.unsubscribe();
  }

  /** Records the boundaries now behind us; cheap when none is (it runs on every sampler update). */
  record(): void {
    const now = this.deps.clock.nowMs();
    if (this.deps.utc.steps !== this.anchoredAt) {
      // The system clock stepped: the boundaries sit elsewhere on the agent's clock. Those the step skipped
      // are not recorded (marks only split energy; one not on a boundary costs nothing but a piece).
      this.anchoredAt = this.deps.utc.steps;
      this.nextMs = this.nextBoundaryAfter(now);
      this.waitingSinceMs = undefined;
    }
    if (now <= this.nextMs) return;
    // How long the next boundary has waited for readings after it, counted from when it first could have
    // been recorded (not from the boundary itself: after a suspended process, many are due at once).
    this.waitingSinceMs ??= now;
    const force = now - this.waitingSinceMs > STALE_MS;
    const rows: BoundaryRow[] = [];
    while (this.nextMs < now) {
      const marks = this.marksAt(this.nextMs, force);
      if (!marks) break;
      rows.push(...marks);
      this.nextMs += BOUNDARY_PERIOD_MS;
    }
    if (this.nextMs >= now) this.waitingSinceMs = undefined;
    if (rows.length === 0) return;
    for (const r of rows) this.remember(r);
    try {
      this.deps.store.insertBoundaries(rows);
    } catch (err) {
      this.deps.log.error({ err }, "boundary log: write failed (windows of this period fall back to in-memory marks)");
    }
  }

  /** Every available device's mark at tMs; undefined while one has no reading after it (unless forced). */
  private marksAt(tMs: number, force: boolean): BoundaryRow[] | undefined {
    const { sampler, store } = this.deps;
    const rows: BoundaryRow[] = [];
    for (const d of sampler.devices()) {
      if (d.status !== "ok") continue; // a lost device must not hold the others back
      const edge = sampler.energyAt(d.id, tMs);
      if (!edge) continue; // no reading before tMs: the device's timeline starts later
      if (edge.kind === "extrapolated" && !force) return undefined;
      rows.push({ deviceId: d.id, tMs, runId: store.runId, cumJ: edge.energyJ });
    }
    return rows;
  }

  private remember(r: BoundaryRow): void {
    let marks = this.recent.get(r.deviceId);
    if (!marks) this.recent.set(r.deviceId, (marks = []));
    marks.push({ tMs: r.tMs, runId: r.runId, cumJ: r.cumJ });
    if (marks.length > KEPT_PER_DEVICE) {
      marks.splice(0, marks.length - KEPT_PER_DEVICE);
      this.recentFromMs = Math.max(this.recentFromMs, marks[0]!.tMs);
    }
  }

  /**
   * A device's marks at the boundaries strictly inside (fromMs, toMs): recorded ones (from memory, or from
   * the database for older windows), then this run's boundaries not recorded yet, read off the timeline.
   */
  marksBetween(deviceId: string, fromMs: number, toMs: number): Mark[] {
    const { sampler, store } = this.deps;
    const marks =
      fromMs >= this.recentFromMs
        ? inside(this.recent.get(deviceId) ?? [], fromMs, toMs)
        : store.boundaries(deviceId, fromMs, toMs).map((r) => ({ tMs: r.tMs, runId: r.runId, cumJ: r.cumJ }));
    const { utc } = this.deps;
    for (const utcMs of boundariesBetween(utc.toUtcMs(Math.max(fromMs, this.nextMs - 1)), utc.toUtcMs(toMs))) {
      const tMs = utc.fromUtcMs(utcMs);
      const edge = sampler.energyAt(deviceId, tMs);
      if (edge) marks.push({ tMs, runId: store.runId, cumJ: edge.energyJ });
    }
    return marks;
  }

  /** Deletes logged boundaries before cutoffMs (none of the open windows reaches back that far). */
  purgeBefore(cutoffMs: number): number {
    return this.deps.store.purgeBoundariesBefore(cutoffMs);
  }
}

/** The marks strictly inside (fromMs, toMs) of a sorted list (binary search: a day holds 288 per device). */
function inside(marks: readonly Mark[], fromMs: number, toMs: number): Mark[] {
  let lo = 0;
  let hi = marks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (marks[mid]!.tMs > fromMs) hi = mid;
    else lo = mid + 1;
  }
  const out: Mark[] = [];
  for (let i = lo; i < marks.length && marks[i]!.tMs < toMs; i++) out.push(marks[i]!);
  return out;
}
