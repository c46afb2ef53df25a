/**
 * A window's energy per device, split at the recorded intensity-period boundaries: the pieces the
 * intensity service prices. Marks are a device's cumulative energy at instants (the window's edges and
 * every boundary between them); two marks of one agent run differ by exactly the energy between them.
 * Pure: no I/O, no clock.
 */

/** Boundaries are logged every 5 minutes of UTC: every provider's periods (5 min, 30 min, 1 h) start on one. */
export const BOUNDARY_PERIOD_MS = 300_000;

/** A device's cumulative energy at an instant, within one agent run (cumulative energies of runs differ). */
export interface Mark {
  tMs: number;
  runId: number;
  cumJ: number;
}

/** The energy of one device over [startMs, endMs). */
export interface Piece {
  startMs: number;
  endMs: number;
  energyJ: number;
}

/** The first boundary strictly after tMs. */
export function boundaryAfter(tMs: number): number {
  return (Math.floor(tMs / BOUNDARY_PERIOD_MS) + 1) * BOUNDARY_PERIOD_MS;
}

/** The boundaries strictly inside (fromMs, toMs). */
export function boundariesBetween(fromMs: number, toMs: number): number[] {
  const out: number[] = [];
  for (let t = boundaryAfter(fromMs); t < toMs; t += BOUNDARY_PERIOD_MS) out.push(t);
  return out;
}

/**
 * Splits a window's energy on one device at its marks (sorted, the first at the window's begin, the last
 * at its end). Pieces between marks of one run take the difference of the marks. Where an agent restart
 * separates two marks, nothing recorded the energy's course: those pieces share what the chain across the
 * restart measured (totalJ minus the in-run pieces) in proportion to their length. The pieces sum to totalJ.
 */
export function splitAtMarks(marks: readonly Mark[], totalJ: number): Piece[] {
  if (marks.length < 2) return [];
  const pieces: Array<Piece & { acrossRestart: boolean }> = [];
  let inRunJ = 0;
  for (let i = 1; i < marks.length; i++) {
    const a = marks[i - 1]!;
    const b = marks[i]!;
    if (b.tMs <= a.tMs) continue;
    const acrossRestart = a.runId !== b.runId;
    const energyJ = acrossRestart ? 0 : Math.max(0, b.cumJ - a.cumJ);
    inRunJ += energyJ;
    pieces.push({ startMs: a.tMs, endMs: b.tMs, energyJ, acrossRestart });
  }
  const across = pieces.filter((p) => p.acrossRestart);
  const restJ = Math.max(0, totalJ - inRunJ);
  const acrossMs = across.reduce((sum, p) => sum + (p.endMs - p.startMs), 0);
  for (const p of across) p.energyJ = acrossMs > 0 ? (restJ * (p.endMs - p.startMs)) / acrossMs : 0;
  return pieces.map(({ startMs, endMs, energyJ }) => ({ startMs, endMs, energyJ }));
}
