/**
 * Measurement's protobuf encoding on EndWindow's path. Every ended window is encoded once (result.ts: the
 * bytes are journaled, stored and sent). ts-proto's generated encoder allocates an entry object, a closure
 * and a fork/join per map entry, and grows a fresh buffer from 128 bytes for every message: for 8 GPUs
 * plus two CPU packages (~900 bytes, ~70 fields) that was the largest single cost of EndWindow, ~12-24 µs
 * (bench/agent.ts section 1b shows the agent's own work per RPC).
 *
 * This writes the very same bytes (test/server/agent/measurement-wire.test.ts checks byte equality with
 * Measurement.encode over arbitrary Measurements, and fails when the message gains a field this encoder
 * does not know) into one buffer kept between calls. Carbon periods, rare and nested, go through the
 * generated encoder.
 */
import { CarbonPeriod, type Measurement } from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Timestamp } from "../../../proto/gen/google/protobuf/timestamp.js";
import { WireWriter } from "./wire-writer.js";

/** Every Measurement field this encoder writes, in field-number order (the test compares with ts-proto's). */
export const ENCODED_FIELDS = [
  "key",
  "beginTime",
  "endTime",
  "timeS",
  "gpuEnergyJ",
  "cpuEnergyJ",
  "dramEnergyJ",
  "gpuCarbonG",
  "cpuCarbonG",
  "dramCarbonG",
  "gpuEnergyUncertaintyJ",
  "cpuEnergyUncertaintyJ",
  "dramEnergyUncertaintyJ",
  "approximations",
  "missingDevices",
  "cpuUnavailableReason",
  "dramUnavailableReason",
  "carbonStatus",
  "carbonStatusReason",
  "carbonPeriods",
  "labels",
  "ended",
  "gpuUuids",
  "totalEnergyJ",
  "totalCarbonG",
  "simulated",
] as const satisfies ReadonlyArray<keyof Measurement>;

const out = new WireWriter();

/** A window's edges at the precision they were measured (fractional ms since the epoch). */
export interface EdgesMs {
  beginMs: number;
  endMs: number;
}

/** The ms since the epoch of a Timestamp's bytes, nanoseconds kept as the fraction. */
function timestampMs(bytes: Uint8Array): number {
  const t = Timestamp.decode(bytes);
  return Number(t.seconds) * 1000 + t.nanos / 1_000_000;
}

/**
 * begin_time and end_time of an encoded Measurement at full precision (ts-proto's Date has whole
 * milliseconds): a stored result read back and encoded again keeps its edges to the nanosecond.
 */
export function readEdgesMs(bytes: Uint8Array): Partial<EdgesMs> {
  const reader = new BinaryReader(bytes);
  const edges: Partial<EdgesMs> = {};
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 2 && wireType === WireType.LengthDelimited) edges.beginMs = timestampMs(reader.bytes());
    else if (field === 3 && wireType === WireType.LengthDelimited) edges.endMs = timestampMs(reader.bytes());
    else reader.skip(wireType);
  }
  return edges;
}

/**
 * A Timestamp field. exactMs (fractional ms since the epoch, the agent's own clock) gives the instant at
 * the precision it was measured, in nanoseconds; a Date alone has whole milliseconds.
 */
function timestamp(tag: number, date: Date, exactMs?: number): void {
  const ms = date.getTime();
  out.varint(tag);
  const start = out.open();
  if (exactMs !== undefined && Number.isFinite(exactMs) && exactMs >= 0 && Math.trunc(exactMs) === ms) {
    let seconds = Math.floor(exactMs / 1000);
    let nanos = Math.round((exactMs - seconds * 1000) * 1_000_000);
    if (nanos >= 1_000_000_000) {
      seconds += 1;
      nanos -= 1_000_000_000;
    }
    if (seconds !== 0) {
      out.varint(8);
      out.varint(seconds);
    }
    out.int32Field(16, nanos);
  } else if (Number.isFinite(ms) && ms >= 0) {
    const seconds = Math.trunc(ms / 1000);
    const nanos = (ms % 1000) * 1_000_000;
    if (seconds !== 0) {
      out.varint(8);
      out.varint(seconds);
    }
    out.int32Field(16, nanos);
  } else {
    out.raw(Timestamp.encode({ seconds: BigInt(Math.trunc(ms / 1000)), nanos: (ms % 1000) * 1_000_000 }).finish());
  }
  out.close(start);
}

/** map<uint32, double>: ts-proto writes the key even when it is 0 (its keys are strings), and omits value 0. */
function doubleMap(tag: number, map: Record<number, number>): void {
  for (const key of Object.keys(map)) out.doubleMapEntry(tag, key, map[key as unknown as number]!);
}

/** map<uint32 or string, string> entries: a uint32 key is always written (as in doubleMap), a string key unless empty. */
function stringMap(tag: number, map: Record<string, string>, numericKey: boolean): void {
  for (const key of Object.keys(map)) {
    out.varint(tag);
    const start = out.open();
    if (numericKey) {
      out.varint(8);
      out.uint32(key);
    } else out.stringField(10, key);
    out.stringField(18, map[key]!);
    out.close(start);
  }
}

/** Measurement.encode(m).finish(), byte for byte. */
export function encodeMeasurement(m: Measurement, edges?: EdgesMs): Uint8Array {
  out.pos = 0;
  out.stringField(10, m.key);
  if (m.beginTime !== undefined) timestamp(18, m.beginTime, edges?.beginMs);
  if (m.endTime !== undefined) timestamp(26, m.endTime, edges?.endMs);
  out.doubleField(33, m.timeS);
  doubleMap(42, m.gpuEnergyJ);
  doubleMap(50, m.cpuEnergyJ);
  doubleMap(58, m.dramEnergyJ);
  doubleMap(66, m.gpuCarbonG);
  doubleMap(74, m.cpuCarbonG);
  doubleMap(82, m.dramCarbonG);
  doubleMap(90, m.gpuEnergyUncertaintyJ);
  doubleMap(98, m.cpuEnergyUncertaintyJ);
  doubleMap(106, m.dramEnergyUncertaintyJ);
  for (const a of m.approximations) {
    out.varint(114);
    const start = out.open();
    out.int32Field(8, a.domain);
    out.uint32Field(16, a.index);
    out.int32Field(24, a.kind);
    out.stringField(34, a.detail);
    out.close(start);
  }
  for (const d of m.missingDevices) {
    out.varint(122);
    const start = out.open();
    out.int32Field(8, d.domain);
    out.uint32Field(16, d.index);
    out.stringField(26, d.reason);
    out.stringField(34, d.hint);
    out.close(start);
  }
  out.stringField(130, m.cpuUnavailableReason);
  out.stringField(138, m.dramUnavailableReason);
  out.int32Field(144, m.carbonStatus);
  out.stringField(154, m.carbonStatusReason);
  for (const p of m.carbonPeriods) {
    const bytes = CarbonPeriod.encode(p).finish();
    out.varint(162);
    out.varint(bytes.length);
    out.raw(bytes);
  }
  stringMap(170, m.labels, false);
  out.boolField(176, m.ended);
  stringMap(186, m.gpuUuids, true);
  out.doubleField(193, m.totalEnergyJ);
  out.doubleField(201, m.totalCarbonG);
  out.boolField(208, m.simulated);
  return Uint8Array.prototype.slice.call(out.buf, 0, out.pos);
}
