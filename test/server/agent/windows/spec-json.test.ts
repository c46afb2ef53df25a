/** The window spec the store persists is assembled from pre-serialised parts: it must be JSON.stringify's text. */
import test from "ava";
import fc from "fast-check";
import { binaryString } from "../../../helpers/arbitraries.js";
import type { WindowSpec } from "../../../../server/agent/windows/result.js";
import { decodeSpec, decodeSpecOwner, RECORD_VERSION } from "../../../../server/agent/storage/records.js";
import { specJson } from "../../../../server/agent/windows/manager.js";

const device = fc.record(
  { domain: fc.constantFrom("gpu" as const, "cpu" as const, "dram" as const), index: fc.nat(64), deviceId: fc.string(), uuid: fc.string() },
  { requiredKeys: ["domain", "index", "deviceId"] },
);

test("specJson writes exactly JSON.stringify({ v, ...spec }), for any key, labels, time and selection", (t) => {
  fc.assert(
    fc.property(
      fc.record({
        key: fc.string({ unit: "grapheme" }),
        beginMs: fc.double({ noNaN: true, noDefaultInfinity: true }),
        labels: fc.dictionary(binaryString(), binaryString()),
        devices: fc.array(device, { maxLength: 12 }),
        skipped: fc.array(fc.record({ domain: fc.constantFrom("gpu" as const, "cpu" as const), index: fc.nat(8), reason: fc.string() }), {
          maxLength: 3,
        }),
        skipGpus: fc.boolean(),
        skipCpus: fc.boolean(),
      }),
      (spec: WindowSpec) => {
        const json = specJson(spec, { devices: JSON.stringify(spec.devices), skipped: JSON.stringify(spec.skipped) });
        return json === JSON.stringify({ v: RECORD_VERSION, ...spec }) && !json.includes("\n");
      },
    ),
  );
  t.pass();
});

test('with an owner (authentication on), specJson appends it, and the owner decodes back; none: ""', (t) => {
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", minLength: 1 }), (owner) => {
      const spec: WindowSpec = { key: "job-1", beginMs: 1, labels: {}, devices: [], skipped: [], skipGpus: false, skipCpus: false };
      const json = specJson(spec, { devices: "[]", skipped: "[]" }, owner);
      return (
        json === JSON.stringify({ v: RECORD_VERSION, ...spec, owner }) &&
        decodeSpecOwner(json) === owner &&
        decodeSpec(json).key === "job-1"
      );
    }),
  );
  t.is(decodeSpecOwner(JSON.stringify({ v: RECORD_VERSION, key: "k" })), "", "windows begun without authentication, or before ownership");
  t.throws(() => decodeSpecOwner(JSON.stringify({ v: RECORD_VERSION, key: "k", owner: 7 })), {
    message: /window spec.owner: expected a string/,
  });
});
