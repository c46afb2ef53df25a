/** A window's result (plain data) as Measurement bytes and back: what the store keeps and repricing reads. */
import test from "ava";
import fc from "fast-check";
import { Measurement } from "../../../../proto/gen/carbonmon/agent/v1/agent.js";
import { Timestamp } from "../../../../proto/gen/google/protobuf/timestamp.js";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import type { IntensityInfo } from "../../../../server/agent/carbon/outcome.js";
import { measurementCodec } from "../../../../server/agent/api/measurement-codec.js";
import type { DeviceFigures, WindowResult } from "../../../../server/agent/windows/result.js";

const domain = fc.constantFrom("gpu" as const, "cpu" as const, "dram" as const);
const finite = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 });
const text = fc.string({ maxLength: 40 });
const edgeMs = fc.double({ min: 1e12, max: 2e12, noNaN: true });

const device: fc.Arbitrary<DeviceFigures> = fc.record({
  domain,
  index: fc.nat(64),
  energyJ: finite,
  uncertaintyJ: finite,
  shortWindow: fc.boolean(),
  powerIntegration: fc.boolean(),
  counterReset: fc.boolean(),
  extrapolated: fc.boolean(),
  wrapsInferred: fc.nat(5),
});

const intensity: fc.Arbitrary<IntensityInfo> = fc.record({
  zone: text,
  gPerKwh: finite,
  validFromMs: fc.option(fc.integer({ min: 0, max: 2e12 }), { nil: undefined }),
  validToMs: fc.option(fc.integer({ min: 0, max: 2e12 }), { nil: undefined }),
  isEstimated: fc.boolean(),
  estimationMethod: text,
  provider: text,
  signal: fc.constantFrom("SIGNAL_TYPE_UNSPECIFIED", "SIGNAL_TYPE_AVERAGE", "SIGNAL_TYPE_MARGINAL"),
  emissionFactor: fc.constantFrom("EMISSION_FACTOR_TYPE_UNSPECIFIED", "EMISSION_FACTOR_TYPE_LIFECYCLE", "EMISSION_FACTOR_TYPE_DIRECT"),
  source: fc.constantFrom("INTENSITY_SOURCE_UNSPECIFIED", "INTENSITY_SOURCE_LIVE", "INTENSITY_SOURCE_FORECAST"),
  fetchedAtMs: fc.option(fc.integer({ min: 0, max: 2e12 }), { nil: undefined }),
  sourceUpdatedAtMs: fc.option(fc.integer({ min: 0, max: 2e12 }), { nil: undefined }),
  attempts: fc.array(fc.record({ provider: text, code: text, message: text }), { maxLength: 3 }),
  cached: fc.boolean(),
});

const result: fc.Arbitrary<WindowResult> = fc
  .record({
    key: text,
    beginMs: edgeMs,
    durationMs: fc.double({ min: 0, max: 1e8, noNaN: true }),
    ended: fc.boolean(),
    // "__proto__" never reaches a stored result: BeginWindow refuses it (the generated decoder cannot keep it).
    labels: fc.dictionary(
      text.filter((k) => k !== "__proto__"),
      text,
      { maxKeys: 4 },
    ),
    devices: fc.uniqueArray(device, { selector: (d) => `${d.domain}:${d.index}`, maxLength: 10 }),
    missing: fc.array(fc.record({ domain, index: fc.nat(64), reason: text }), { maxLength: 3 }),
    gpuUuids: fc.dictionary(fc.nat(64).map(String), text, { maxKeys: 4 }) as fc.Arbitrary<Record<number, string>>,
    cpuUnavailableReason: text,
    dramUnavailableReason: text,
    simulated: fc.boolean(),
    status: fc.constantFrom("disabled" as const, "pending" as const, "provisional" as const, "final" as const),
    reason: text,
    grams: fc.array(fc.tuple(domain, fc.nat(64), finite), { maxLength: 6 }),
    periods: fc.array(fc.record({ intensity: fc.option(intensity, { nil: undefined }), energyJ: finite, carbonG: finite }), {
      maxLength: 3,
    }),
  })
  .map((x) => {
    const carbonG = Object.fromEntries(x.grams.map(([d, i, g]) => [`${d}:${i}`, g]));
    return {
      key: x.key,
      beginMs: x.beginMs,
      endMs: x.beginMs + x.durationMs,
      timeS: x.durationMs / 1000,
      ended: x.ended,
      labels: x.labels,
      devices: x.devices,
      missing: x.missing,
      gpuUuids: x.gpuUuids,
      cpuUnavailableReason: x.cpuUnavailableReason,
      dramUnavailableReason: x.dramUnavailableReason,
      totalEnergyJ: x.devices.reduce((a, d) => a + d.energyJ, 0),
      simulated: x.simulated,
      carbon: {
        status: x.status,
        reason: x.reason,
        carbonG,
        periods: x.periods,
        totalG: Object.values(carbonG).reduce((a, b) => a + b, 0),
      },
    };
  });

/** Devices and grams in the order the codec reads them back (by domain, then index). */
const canonical = (r: WindowResult): WindowResult => {
  const order = { gpu: 0, cpu: 1, dram: 2 };
  const carbonG = Object.fromEntries(Object.entries(r.carbon.carbonG).sort(([a], [b]) => a.localeCompare(b)));
  return {
    ...r,
    devices: [...r.devices].sort((a, b) => order[a.domain] - order[b.domain] || a.index - b.index),
    carbon: { ...r.carbon, carbonG },
  };
};

test("a result survives encoding: decode(encode(r)) is r, edges to within a microsecond; encoded again, the same bytes", (t) => {
  fc.assert(
    fc.property(result, (r) => {
      const bytes = measurementCodec.encode(r);
      const back = measurementCodec.decode(bytes);
      const close = Math.abs(back.beginMs - r.beginMs) < 1e-3 && Math.abs(back.endMs - r.endMs) < 1e-3;
      const same = JSON.stringify(canonical({ ...back, beginMs: r.beginMs, endMs: r.endMs })) === JSON.stringify(canonical(r));
      // Read back and encoded again (repricing does that), the bytes are those of the result in the codec's order.
      return close && same && Buffer.from(measurementCodec.encode(back)).equals(Buffer.from(measurementCodec.encode(canonical(r))));
    }),
    { numRuns: 500 },
  );
  t.pass();
});

/** The raw Timestamp of field `field` in an encoded Measurement. */
function rawTimestamp(bytes: Uint8Array, field: number): Timestamp {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [f, wireType] = reader.tag();
    if (f === field) return Timestamp.decode(reader.bytes());
    reader.skip(wireType);
  }
  throw new Error(`no field ${field}`);
}

test("begin_time and end_time carry the edges at the precision they were measured (nanoseconds), consistent with time_s", (t) => {
  const beginMs = 1_764_000_000_123.457;
  const endMs = beginMs + 1000.2501;
  const r: WindowResult = {
    key: "k",
    beginMs,
    endMs,
    timeS: (endMs - beginMs) / 1000,
    ended: true,
    labels: {},
    devices: [],
    missing: [],
    gpuUuids: {},
    cpuUnavailableReason: "",
    dramUnavailableReason: "",
    totalEnergyJ: 0,
    simulated: false,
    carbon: { status: "disabled", reason: "", carbonG: {}, periods: [], totalG: 0 },
  };
  const bytes = measurementCodec.encode(r);
  const begin = rawTimestamp(bytes, 2);
  const end = rawTimestamp(bytes, 3);
  t.is(begin.seconds, 1_764_000_000n);
  t.true(Math.abs(begin.nanos - 123_457_000) <= 300, `nanos ${begin.nanos}`);
  const spanMs = Number(end.seconds - begin.seconds) * 1000 + (end.nanos - begin.nanos) / 1e6;
  const m = Measurement.decode(bytes);
  t.true(Math.abs(spanMs - m.timeS * 1000) < 1e-3, `edges ${spanMs} ms apart, time_s ${m.timeS}`);
  // A Date keeps whole milliseconds: clients that read Dates still see the right millisecond.
  t.is(m.beginTime!.getTime(), Math.floor(beginMs));
});
