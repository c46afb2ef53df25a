/**
 * ComputeEmissions in worker threads (emissions-pool.ts): the same result as the in-process computation,
 * bit for bit, for a maximum-size request; the request is never decoded on the main thread; errors keep
 * their code and hint across the thread boundary; small requests stay on the main thread.
 */
import test from "ava";
import { ComputeEmissionsRequest, ComputeEmissionsResponse } from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { computeEmissions, MAX_SEGMENTS, MAX_SPAN_MS, type EnergySegment } from "../../../server/intensity/core/emissions.js";
import type { Point } from "../../../server/intensity/core/point.js";
import { emissionsResponse } from "../../../server/intensity/emissions-job.js";
import { EmissionsPool, INLINE_MAX_BYTES } from "../../../server/intensity/emissions-pool.js";
import { AppError, Code } from "../../../server/shared/errors.js";
import { withUpstream } from "../../../server/shared/net/upstream-context.js";

const HOUR_MS = 3_600_000;
const FROM_MS = Date.UTC(2024, 9, 1);

/** `n` segments over exactly the longest span allowed, 8 devices taking turns, uneven energies and lengths. */
function segments(n: number): EnergySegment[] {
  const perDevice = n / 8;
  const lengthMs = MAX_SPAN_MS / perDevice;
  return Array.from({ length: n }, (_, i) => {
    const k = Math.floor(i / 8);
    const startMs = Math.round(FROM_MS + k * lengthMs);
    const endMs = Math.round(FROM_MS + (k + 1) * lengthMs);
    return { startMs, endMs, energyJ: ((k * 7919 + i) % 1000) * 123.456789, device: `gpu:${i % 8}` };
  });
}

function points(hours: number): Point[] {
  return Array.from({ length: hours }, (_, i) => ({
    zone: "DE",
    gPerKwh: 100 + ((i * 37) % 400) + 0.123,
    validFromMs: FROM_MS + i * HOUR_MS,
    validToMs: FROM_MS + (i + 1) * HOUR_MS,
    isEstimated: false,
    provider: "electricitymaps",
    signal: "average" as const,
    emissionFactor: "lifecycle" as const,
    source: "live" as const,
    fetchedAtMs: FROM_MS,
  }));
}

function encode(segs: EnergySegment[]): Uint8Array {
  return ComputeEmissionsRequest.encode({
    location: { zone: "DE" },
    emissionFactor: 0,
    gapPolicy: 0,
    provider: "",
    segments: segs.map((s) => ({ start: new Date(s.startMs), end: new Date(s.endMs), energyJ: s.energyJ, device: s.device })),
  }).finish();
}

/**
 * The maximum-size request, encoded once per file (100,000 segments take ~0.25 s of CPU to build and encode;
 * the pool copies what it is given, so the same bytes serve every test).
 */
let maxRequestBytes: Uint8Array | undefined;
const maxRequest = (): Uint8Array => (maxRequestBytes ??= encode(segments(MAX_SEGMENTS)));

test.serial("a maximum-size request gives, from a worker, exactly the in-process result; the main thread never decodes it", async (t) => {
  const pool = new EmissionsPool(1);
  t.teardown(() => pool.close());
  const segs = segments(MAX_SEGMENTS);
  const series = points(31 * 24);
  // Half the points came from a fallback: their periods must say so after the crossing too.
  const filled = series.filter((_, i) => i % 2 === 0);
  const bytes = maxRequest();
  const decode = ComputeEmissionsRequest.decode;
  let decodedHere = 0;
  ComputeEmissionsRequest.decode = (...args) => (decodedHere++, decode(...args));
  t.teardown(() => {
    ComputeEmissionsRequest.decode = decode;
  });
  const job = await pool.open(bytes);
  t.is(job.count, MAX_SEGMENTS);
  t.deepEqual(job.span, { startMs: FROM_MS, endMs: FROM_MS + MAX_SPAN_MS });
  t.is(job.fields.location?.zone, "DE");
  const attempts = [{ provider: "electricitymaps", code: "OK", message: "" }];
  const nowMs = FROM_MS + 40 * 24 * HOUR_MS;
  const fromWorker = await job.compute({ points: series, filled, gapPolicy: "error", attempts, nowMs });
  t.is(decodedHere, 0);
  const here = computeEmissions(segs, series, { gapPolicy: "error", filled });
  // The same bytes: every double the same, bit for bit.
  t.is(Buffer.compare(fromWorker, ComputeEmissionsResponse.encode(emissionsResponse(here, attempts, nowMs)).finish()), 0);
  const answer = ComputeEmissionsResponse.decode(fromWorker);
  t.is(answer.totalCarbonG, here.totalCarbonG);
  t.is(answer.periods.length, 31 * 24);
  t.is(answer.periods.filter((p) => p.filled).length, filled.length);
});

test("errors cross the thread with their code and hint: over the segment limit, a bad segment, a missing history, bytes that are no message", async (t) => {
  const pool = new EmissionsPool(1);
  t.teardown(() => pool.close());
  // Every request here is over INLINE_MAX_BYTES, so that it goes to the worker.
  // Eight segments more than the limit: a message's repeated field may come in parts, and the decoder joins them.
  const over = await t.throwsAsync(pool.open(Buffer.concat([maxRequest(), encode(segments(8))])));
  t.true(over instanceof AppError);
  t.is((over as AppError).code, Code.InvalidArgument);
  t.regex(over!.message, /100008 segments, at most 100000 per request/);
  t.is((over as AppError).hint, "split the request");
  const bad = segments(8000);
  bad[5] = { ...bad[5]!, energyJ: -1 };
  t.true(encode(bad).length > INLINE_MAX_BYTES);
  const badErr = (await t.throwsAsync(pool.open(encode(bad)))) as AppError;
  t.is(badErr.code, Code.InvalidArgument);
  t.regex(badErr.message, /^segments\[5\]: energy_j must be finite and >= 0/);
  const garbageBytes = new Uint8Array(INLINE_MAX_BYTES + 1);
  garbageBytes[0] = 0x0f; // field 1 with wire type 7, which does not exist
  const garbage = (await t.throwsAsync(pool.open(garbageBytes))) as AppError;
  t.is(garbage.code, Code.InvalidArgument);
  t.regex(garbage.message, /^not a ComputeEmissionsRequest message/);
  const job = await pool.open(encode(segments(8000)));
  const gap = (await t.throwsAsync(job.compute({ points: [], filled: [], gapPolicy: "error", attempts: [], nowMs: FROM_MS }))) as AppError;
  t.is(gap.code, Code.FailedPrecondition);
  t.regex(gap.message, /^no carbon intensity for /);
  // The worker is still serving.
  t.is((await pool.open(encode(segments(8000)))).count, 8000);
});

test.serial("a small request is handled on this thread, with the same result and the same errors", async (t) => {
  const pool = new EmissionsPool(1);
  t.teardown(() => pool.close());
  const segs = segments(800);
  const bytes = encode(segs);
  t.true(bytes.length <= INLINE_MAX_BYTES);
  const decode = ComputeEmissionsRequest.decode;
  let decodedHere = 0;
  ComputeEmissionsRequest.decode = (...args) => (decodedHere++, decode(...args));
  t.teardown(() => {
    ComputeEmissionsRequest.decode = decode;
  });
  const series = points(31 * 24);
  const job = await pool.open(bytes);
  t.is(decodedHere, 1);
  const inline = await job.compute({ points: series, filled: [], gapPolicy: "fill", attempts: [], nowMs: FROM_MS });
  const expected = ComputeEmissionsResponse.encode(emissionsResponse(computeEmissions(segs, series, { gapPolicy: "fill" }), [], FROM_MS));
  t.is(Buffer.compare(inline, expected.finish()), 0);
  const err = (await t.throwsAsync(pool.open(encode(segments(0))))) as AppError;
  t.is(err.code, Code.InvalidArgument);
  t.is(err.message, "no energy segments");
});

test("a caller that leaves while its request waits for the worker takes it back: its work is never done", async (t) => {
  const pool = new EmissionsPool(1);
  t.teardown(() => pool.close());
  const order: string[] = [];
  const first = pool.open(maxRequest()).then((job) => (order.push("first decoded"), job));
  const controller = new AbortController();
  const second = withUpstream({ signal: controller.signal }, () => pool.open(maxRequest()));
  const secondErr = second.catch((err: unknown) => (order.push("second refused"), err));
  controller.abort(new AppError(Code.Cancelled, "the caller cancelled the request"));
  const err = (await secondErr) as AppError;
  t.is(err.code, Code.Cancelled);
  t.is(err.message, "the caller cancelled the request");
  t.is((await first).count, MAX_SEGMENTS);
  t.deepEqual(order, ["second refused", "first decoded"], "refused while still queued, before the worker answered anything");
  // A compute whose caller has gone (after its request was decoded) is refused too; the worker serves on.
  const gone = new AbortController();
  const job = await withUpstream({ signal: gone.signal }, () => pool.open(encode(segments(8000))));
  gone.abort(new AppError(Code.DeadlineExceeded, "stopped at the caller's deadline"));
  const computeErr = (await t.throwsAsync(job.compute({ points: [], filled: [], gapPolicy: "error", attempts: [], nowMs: 0 }))) as AppError;
  t.is(computeErr.code, Code.DeadlineExceeded);
  t.is((await pool.open(encode(segments(8000)))).count, 8000);
});
