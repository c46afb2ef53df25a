/**
 * BeginWindow and ListWindows report a window's edges at the precision they were measured, as its
 * Measurement does (nanoseconds on the wire; ts-proto's decoded Date keeps whole milliseconds, so the
 * bytes are read here).
 */
import test from "ava";
import {
  BeginWindowRequest,
  EndWindowRequest,
  ListWindowsRequest,
  ListWindowsResponse,
} from "../../../../proto/gen/carbonmon/agent/v1/agent.js";
import { Timestamp } from "../../../../proto/gen/google/protobuf/timestamp.js";
import { readEdgesMs } from "../../../../server/agent/api/measurement-wire.js";
import { rawAgentCall, startTestAgent } from "../../../helpers/grpc.js";
import { BinaryReader } from "@bufbuild/protobuf/wire";

/** The Timestamp fields of a message's bytes, by field number, in fractional ms. */
function timestamps(bytes: Uint8Array): Map<number, number> {
  const reader = new BinaryReader(bytes);
  const out = new Map<number, number>();
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (wireType !== 2) {
      reader.skip(wireType);
      continue;
    }
    const value = reader.bytes();
    if (field === 2 || field === 3) {
      const t = Timestamp.decode(value);
      out.set(field, Number(t.seconds) * 1000 + t.nanos / 1e6);
    }
  }
  return out;
}

test("BeginWindow's and ListWindows' begin_time and end_time are the Measurement's, to the nanosecond", async (t) => {
  const agent = await startTestAgent({ CARBONMON_SIMULATED_GPU: "true" });
  t.teardown(() => agent.close());
  const raw = <Req>(method: string, encode: (r: Req) => Uint8Array, req: Req) => rawAgentCall(agent.client, method, encode, req);
  const begun = await raw("BeginWindow", (r) => BeginWindowRequest.encode(r).finish(), BeginWindowRequest.fromPartial({ key: "exact" }));
  const beginMs = timestamps(begun).get(2)!;
  const open = await raw("ListWindows", (r) => ListWindowsRequest.encode(r).finish(), { includeEnded: true });
  const ended = await raw("EndWindow", (r) => EndWindowRequest.encode(r).finish(), { key: "exact", waitForCounterUpdate: false });
  const listed = await raw("ListWindows", (r) => ListWindowsRequest.encode(r).finish(), { includeEnded: true });
  const measured = readEdgesMs(ended);
  t.is(beginMs, measured.beginMs!, "BeginWindow's begin_time is the Measurement's");
  // ListWindows: the generated decoder still reads it (whole ms); the bytes hold the exact instants.
  t.is(ListWindowsResponse.decode(open).windows[0]!.key, "exact");
  const entry = (bytes: Uint8Array) => {
    const reader = new BinaryReader(bytes);
    reader.tag();
    return timestamps(reader.bytes());
  };
  t.is(entry(open).get(2), measured.beginMs!);
  t.false(entry(open).has(3), "open: no end_time");
  t.is(entry(listed).get(2), measured.beginMs!);
  t.is(entry(listed).get(3), measured.endMs!, "ended: its end_time is the Measurement's");
  t.is(ListWindowsResponse.decode(listed).windows[0]!.endTime!.getTime(), Math.floor(measured.endMs!));
});
