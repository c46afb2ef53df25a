/** EndWindow's own Measurement encoder must write exactly the bytes of ts-proto's generated one. */
import test from "ava";
import fc from "fast-check";
import { binaryString } from "../../../helpers/arbitraries.js";
import { CarbonPeriod, Measurement } from "../../../../proto/gen/carbonmon/agent/v1/agent.js";
import { ENCODED_FIELDS, encodeMeasurement } from "../../../../server/agent/api/measurement-wire.js";

const uint32 = fc.oneof(fc.nat(200), fc.nat(0xffffffff));
const enumValue = fc.integer({ min: -1, max: 6 }); // -1 is ts-proto's UNRECOGNIZED
const text = fc.oneof(fc.string(), binaryString({ maxLength: 200 }), fc.string({ unit: "grapheme" }));
const doubleMap = fc.dictionary(uint32.map(String), fc.double(), { maxKeys: 12 }) as fc.Arbitrary<Record<number, number>>;
const date = fc.date({ min: new Date(-1e13), max: new Date(1e13), noInvalidDate: true });

const measurement: fc.Arbitrary<Measurement> = fc
  .record(
    {
      key: text,
      beginTime: date,
      endTime: date,
      timeS: fc.double(),
      gpuEnergyJ: doubleMap,
      cpuEnergyJ: doubleMap,
      dramEnergyJ: doubleMap,
      gpuCarbonG: doubleMap,
      cpuCarbonG: doubleMap,
      dramCarbonG: doubleMap,
      gpuEnergyUncertaintyJ: doubleMap,
      cpuEnergyUncertaintyJ: doubleMap,
      dramEnergyUncertaintyJ: doubleMap,
      approximations: fc.array(fc.record({ domain: enumValue, index: uint32, kind: enumValue, detail: text }), { maxLength: 24 }),
      missingDevices: fc.array(fc.record({ domain: enumValue, index: uint32, reason: text, hint: text }), { maxLength: 4 }),
      cpuUnavailableReason: text,
      dramUnavailableReason: text,
      carbonStatus: enumValue,
      carbonStatusReason: text,
      carbonPeriods: fc.array(
        fc
          .record({ energyJ: fc.double(), carbonG: fc.double(), zone: text, gPerKwh: fc.double(), from: date })
          .map(({ energyJ, carbonG, zone, gPerKwh, from }) =>
            CarbonPeriod.fromPartial({ energyJ, carbonG, intensity: { zone, gPerKwh, validFrom: from, provider: "electricitymaps" } }),
          ),
        { maxLength: 3 },
      ),
      labels: fc.dictionary(text, text, { maxKeys: 5 }),
      ended: fc.boolean(),
      gpuUuids: fc.dictionary(uint32.map(String), text, { maxKeys: 8 }) as fc.Arbitrary<Record<number, string>>,
      totalEnergyJ: fc.double(),
      totalCarbonG: fc.double(),
      simulated: fc.boolean(),
    },
    { requiredKeys: [] },
  )
  .map((partial) => Measurement.fromPartial(partial));

const same = (m: Measurement): boolean => Buffer.from(encodeMeasurement(m)).equals(Buffer.from(Measurement.encode(m).finish()));

test("encodeMeasurement writes Measurement.encode's bytes, for any Measurement", (t) => {
  fc.assert(fc.property(measurement, same), { numRuns: 500 });
  t.pass();
});

test("encodeMeasurement: the edges (no field set, long strings and sub-messages, large ids, dates before 1970)", (t) => {
  t.true(same(Measurement.fromPartial({})));
  t.true(
    same(
      Measurement.fromPartial({
        key: "k".repeat(300),
        carbonStatusReason: "é".repeat(200),
        labels: { ["l".repeat(150)]: "v".repeat(20_000) },
      }),
    ),
  );
  t.true(same(Measurement.fromPartial({ gpuEnergyJ: { 0: 0, 4294967295: -0, 7: Number.NaN, 8: Number.POSITIVE_INFINITY } })));
  t.true(
    same(
      Measurement.fromPartial({
        beginTime: new Date(-1),
        endTime: new Date(-86_400_000 * 365 * 100 - 123),
        approximations: [{ domain: -1, index: 0, kind: -1, detail: "" }],
      }),
    ),
  );
  t.true(
    same(
      Measurement.fromPartial({ approximations: [{ detail: "d".repeat(200) }], missingDevices: [{ reason: "r".repeat(130), hint: "h" }] }),
    ),
  );
});

test("encodeMeasurement rejects what the generated encoder rejects", (t) => {
  for (const bad of [
    Measurement.fromPartial({ approximations: [{ index: -1 }] }),
    Measurement.fromPartial({ beginTime: new Date(Number.NaN) }),
  ]) {
    t.throws(() => Measurement.encode(bad).finish());
    t.throws(() => encodeMeasurement(bad));
  }
});

test("encodeMeasurement knows every field of Measurement (a field added to agent.proto must be added to it)", (t) => {
  t.deepEqual([...ENCODED_FIELDS].sort(), Object.keys(Measurement.fromPartial({})).sort());
});
