/**
 * BeginWindow's and ListWindows' answers with their times at the precision the edges were measured
 * (fractional ms on the agent's clock, nanoseconds on the wire), as Measurements carry them: ts-proto's
 * Timestamp is a Date, whole milliseconds. Each message is encoded by the generated encoder without its
 * times, then the Timestamp fields are appended: protobuf fields may come in any order.
 */
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { BeginWindowResponse, WindowInfo } from "../../../proto/gen/carbonmon/agent/v1/agent.js";

/** A Timestamp field (tag `field`) for an instant in fractional ms since the epoch. */
function timestampField(writer: BinaryWriter, field: number, ms: number): void {
  let seconds = Math.floor(ms / 1000);
  let nanos = Math.round((ms - seconds * 1000) * 1_000_000);
  if (nanos >= 1_000_000_000) {
    seconds += 1;
    nanos -= 1_000_000_000;
  }
  writer.uint32((field << 3) | WireType.LengthDelimited).fork();
  if (seconds !== 0) writer.uint32((1 << 3) | WireType.Varint).int64(seconds);
  if (nanos !== 0) writer.uint32((2 << 3) | WireType.Varint).int32(nanos);
  writer.join();
}

export function encodeBeginResponse(response: Omit<BeginWindowResponse, "beginTime">, beginUtcMs: number): Uint8Array {
  const writer = new BinaryWriter();
  BeginWindowResponse.encode({ ...response, beginTime: undefined }, writer);
  timestampField(writer, 2, beginUtcMs);
  return writer.finish();
}

export interface ListedWindow {
  info: Omit<WindowInfo, "beginTime" | "endTime">;
  beginUtcMs: number;
  endUtcMs: number | undefined;
}

export function encodeListResponse(windows: readonly ListedWindow[]): Uint8Array {
  const writer = new BinaryWriter();
  for (const w of windows) {
    writer.uint32((1 << 3) | WireType.LengthDelimited).fork();
    WindowInfo.encode({ ...w.info, beginTime: undefined, endTime: undefined }, writer);
    timestampField(writer, 2, w.beginUtcMs);
    if (w.endUtcMs !== undefined) timestampField(writer, 3, w.endUtcMs);
    writer.join();
  }
  return writer.finish();
}
