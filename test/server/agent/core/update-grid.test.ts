import test from "ava";
import fc from "fast-check";
import { UpdateGrid } from "../../../../server/agent/core/update-grid.js";

/** A counter that updates at phase + k*period; a read of `durationMs` samples it at its end. */
function counter(phaseMs: number, periodMs = 100) {
  return (startMs: number, durationMs = 4) => {
    const endMs = startMs + durationMs;
    const k = Math.floor((endMs - phaseMs) / periodMs);
    return { startMs, endMs, value: k, updateMs: phaseMs + k * periodMs };
  };
}

/** Drives reads the way the worker does: half-period reads until calibrated, probes, then quiet reads. */
function drive(grid: UpdateGrid, read: ReturnType<typeof counter>, untilMs: number) {
  let now = 0;
  const stamps: Array<{ tMs: number; uncertaintyMs: number; truth: number; probe: boolean }> = [];
  let probe = false;
  while (now < untilMs) {
    const r = read(now);
    const s = grid.observe(r);
    stamps.push({ ...s, truth: r.updateMs, probe });
    const next = grid.nextRead(r.endMs, 4, 100);
    probe = next.probe;
    now = Math.max(next.atMs, r.endMs + 0.1);
  }
  return stamps;
}

test("it learns the phase within a second and then stamps every read with its update instant", (t) => {
  for (const phase of [0, 13.7, 50, 99.2]) {
    const grid = new UpdateGrid({ targetWidthMs: 6 });
    const stamps = drive(grid, counter(phase), 3000);
    const late = stamps.filter((s, i) => i > stamps.length / 2 && !s.probe);
    t.true(grid.calibrated, `phase ${phase}`);
    for (const s of late) {
      t.true(Math.abs(s.tMs - s.truth) <= s.uncertaintyMs + 1e-9, `phase ${phase}: stamp ${s.tMs} vs ${s.truth} ± ${s.uncertaintyMs}`);
      t.true(s.uncertaintyMs <= 4, `phase ${phase}: uncertainty ${s.uncertaintyMs}`);
    }
  }
});

test("before calibration a value is stamped somewhere in the period before the read", (t) => {
  const grid = new UpdateGrid();
  const s = grid.observe({ startMs: 1000, endMs: 1004, value: 1 });
  t.deepEqual(s, { tMs: 952, uncertaintyMs: 52 });
});

test("a true period slightly off the nominal one is followed (the arc widens, probes narrow it)", (t) => {
  const grid = new UpdateGrid({ targetWidthMs: 6 });
  const stamps = drive(grid, counter(20, 100.05), 20_000);
  const late = stamps.filter((s, i) => i > stamps.length / 2 && !s.probe);
  t.true(late.every((s) => Math.abs(s.tMs - s.truth) <= s.uncertaintyMs + 1e-9));
});

test("a contradiction (the grid moved: driver reload) resets the arc and it is learnt again", (t) => {
  const grid = new UpdateGrid({ targetWidthMs: 6 });
  drive(grid, counter(10), 2000);
  const moved = counter(60);
  let now = 3000;
  const stamps: Array<{ ok: boolean }> = [];
  for (let i = 0; i < 60; i++) {
    const r = moved(now);
    const s = grid.observe(r);
    stamps.push({ ok: Math.abs(s.tMs - r.updateMs) <= s.uncertaintyMs + 1e-9 });
    now = Math.max(grid.nextRead(r.endMs, 4, 100).atMs, r.endMs + 0.1);
  }
  t.true(grid.resets >= 1);
  t.true(stamps.slice(-10).every((s) => s.ok));
});

test("property: whatever the phase, period drift, read duration and jitter, every stamp holds the truth", (t) => {
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 100, noNaN: true }),
      fc.double({ min: -0.05, max: 0.05, noNaN: true }),
      fc.double({ min: 1, max: 6, noNaN: true }),
      fc.double({ min: 0, max: 5, noNaN: true }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (phase, periodDrift, durationMs, jitterMs, sampleAt) => {
        const period = 100 + periodDrift;
        const grid = new UpdateGrid({ targetWidthMs: 1.5 * durationMs + 1 });
        let now = 1000;
        let narrow = 0;
        for (let i = 0; i < 120; i++) {
          const startMs = now + jitterMs * ((i * 0.618) % 1);
          const endMs = startMs + durationMs;
          const sampleMs = startMs + sampleAt * durationMs;
          const value = Math.floor((sampleMs - phase) / period);
          const s = grid.observe({ startMs, endMs, value });
          if (Math.abs(s.tMs - (phase + value * period)) > s.uncertaintyMs + 1e-9) return false;
          if (i > 60 && s.uncertaintyMs < durationMs + 2) narrow++;
          now = Math.max(grid.nextRead(endMs, durationMs, 100).atMs, endMs + 0.1);
        }
        return narrow > 20; // and it does learn: most late stamps are narrow
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test("property: reads stalled for several periods (a preempted thread) still get stamps that hold the truth", (t) => {
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 100, noNaN: true }),
      fc.array(fc.double({ min: 0, max: 450, noNaN: true }), { minLength: 8, maxLength: 8 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (phase, stallsMs, sampleAt) => {
        const grid = new UpdateGrid({ targetWidthMs: 7 });
        let now = 1000;
        for (let i = 0; i < 160; i++) {
          // Every 20th read stalls: its call spans up to four and a half periods, its value sampled anywhere inside.
          const durationMs = i % 20 === 19 ? 4 + stallsMs[Math.floor(i / 20)]! : 4;
          const startMs = now;
          const endMs = startMs + durationMs;
          const value = Math.floor((startMs + sampleAt * durationMs - phase) / 100);
          const s = grid.observe({ startMs, endMs, value });
          if (Math.abs(s.tMs - (phase + value * 100)) > s.uncertaintyMs + 1e-9) return false;
          now = Math.max(grid.nextRead(endMs, 4, 100).atMs, endMs + 0.1);
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});
