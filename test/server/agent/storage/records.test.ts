/**
 * On-disk records: versioned, validated on the way back in, and read whatever version wrote them. The
 * version-0 inputs below are written the way agents before versioned records wrote them (the same
 * JSON.stringify calls), so an upgrade in place is tested against real old records.
 */
import test from "ava";
import {
  decodeAnchor,
  decodeEdges,
  decodeJournalRecord,
  decodePieces,
  decodeSpec,
  encodeAnchor,
  encodeEdges,
  encodePieces,
  RECORD_VERSION,
  RecordError,
  type StoredEdge,
} from "../../../../server/agent/storage/records.js";
import type { WindowSpec } from "../../../../server/agent/windows/result.js";

const spec: WindowSpec = {
  key: "job-1/epoch-2",
  beginMs: 1_764_000_000_123.25,
  labels: { team: "vision" },
  devices: [
    { domain: "gpu", index: 0, deviceId: "gpu:1", uuid: "GPU-abc" },
    { domain: "cpu", index: 0, deviceId: "cpu:0" },
  ],
  skipped: [{ domain: "dram", index: 0, reason: "no DRAM zone" }],
  skipGpus: false,
  skipCpus: false,
};
const edge: StoredEdge = {
  energyJ: 12.5,
  edgeUncertaintyJ: 0.1,
  cumulativeUncertaintyJ: 0,
  kind: "interpolated",
  resets: 0,
  segment: 41,
  tMs: spec.beginMs,
  runId: 3,
  rawJ: 99_000,
  powerW: 250,
};
const pieces = [{ startMs: 1000, endMs: 2000, energyJ: 5, device: "gpu:0" }];

test("version-0 records (written before records carried a version) are read and upgraded", (t) => {
  t.deepEqual({ ...decodeSpec(JSON.stringify(spec)) }, spec);
  t.deepEqual(decodeEdges(JSON.stringify(Object.fromEntries([["gpu:1", edge]]))), new Map([["gpu:1", edge]]));
  t.deepEqual(decodePieces(JSON.stringify(pieces)), pieces);
  t.deepEqual(decodeAnchor(JSON.stringify({ tMs: 5, cumJ: 6, rawJ: 7 })), { tMs: 5, cumJ: 6, rawJ: 7 });
  // Journal lines as the store wrote them: the spec inline, no trailing version.
  const begin = JSON.parse(`["b",4,${JSON.stringify(spec.key)},${spec.beginMs},3,${JSON.stringify(spec)}]`);
  t.deepEqual(decodeJournalRecord(begin), ["b", 4, spec.key, spec.beginMs, 3, JSON.stringify(spec)]);
  t.deepEqual(decodeJournalRecord(["e", 4, 2000, "AAEC", "[]", null]), ["e", 4, 2000, "AAEC", "[]", null]);
  t.deepEqual(decodeJournalRecord(["c", 4]), ["c", 4]);
});

test("version-1 records round-trip", (t) => {
  t.deepEqual({ ...decodeSpec(JSON.stringify({ v: RECORD_VERSION, ...spec })) }, spec);
  t.deepEqual(decodeEdges(encodeEdges(new Map([["gpu:1", edge]]))), new Map([["gpu:1", edge]]));
  t.deepEqual(decodePieces(encodePieces(pieces)), pieces);
  t.deepEqual(decodeAnchor(encodeAnchor({ tMs: 5, cumJ: 6, powerW: 1 })), { tMs: 5, cumJ: 6, powerW: 1 });
  t.deepEqual(decodeJournalRecord(["c", 4, RECORD_VERSION]), ["c", 4]);
});

test("a record that does not decode says which field and why; a newer version is refused, not guessed at", (t) => {
  const refused = (f: () => unknown, pattern: RegExp) => t.regex(t.throws(f, { instanceOf: RecordError })!.message, pattern);
  // The hostile journal line of issue 20: a begin whose spec has no key.
  refused(() => decodeJournalRecord(["b", 99, "ghost", 1, 1, {}]), /window spec.*labels|window spec.*key/);
  refused(() => decodeJournalRecord(["x", 1]), /unknown operation "x"/);
  refused(() => decodeJournalRecord(["c", 0]), /ids start at 1/);
  refused(() => decodeJournalRecord(["c", 4, 7]), /version 7/);
  refused(() => decodeJournalRecord(["e", 4, 2000, "not base64!", null, null]), /not base64/);
  refused(() => decodeJournalRecord(["b", 4, "other", 1, 3, spec]), /key "other" and its spec's key/);
  refused(() => decodeSpec(JSON.stringify({ ...spec, v: 2 })), /version 2 is newer/);
  refused(() => decodeSpec(JSON.stringify({ ...spec, key: "" })), /not a window key/);
  refused(() => decodeSpec(JSON.stringify({ ...spec, devices: [{ domain: "tpu", index: 0, deviceId: "x" }] })), /unknown domain "tpu"/);
  refused(() => decodeSpec("{torn"), /not JSON/);
  refused(() => decodeEdges(JSON.stringify({ "gpu:0": { ...edge, energyJ: null } })), /energyJ: expected a finite number/);
  refused(() => decodePieces(JSON.stringify([{ ...pieces[0], endMs: 0 }])), /ends before it starts/);
  refused(() => decodePieces(JSON.stringify([{ ...pieces[0], device: "__proto__" }])), /not a device name/);
  refused(() => decodeAnchor(JSON.stringify({ tMs: "5", cumJ: 6 })), /checkpoint.tMs/);
});

test("a decoded spec's labels are a plain record: a stored '__proto__' label stays a label", (t) => {
  const decoded = decodeSpec(JSON.stringify({ ...spec, labels: JSON.parse('{"__proto__":"x","a":"b"}') }));
  t.deepEqual(Object.keys(decoded.labels), ["__proto__", "a"]);
  t.is(Object.getPrototypeOf({}).x, undefined);
});
