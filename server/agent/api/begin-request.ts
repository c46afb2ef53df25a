/**
 * BeginWindowRequest as the agent reads it. ts-proto's decoder fills map fields on plain objects, so a
 * label key "__proto__" sets the object's prototype instead of adding a label: the label would be dropped
 * without a word. The request's label keys are read from the bytes too, and any the decoded object could
 * not keep are named, so that BeginWindow refuses the request (INVALID_ARGUMENT) instead.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { BeginWindowRequest } from "../../../proto/gen/carbonmon/agent/v1/agent.js";

/** BeginWindowRequest.labels (map<string, string> labels = 5). */
const LABELS_FIELD = 5;

export interface ReadBeginRequest extends BeginWindowRequest {
  /** Label keys the request sent that a decoded object cannot hold. */
  unkeepableLabelKeys: string[];
}

function labelKeys(bytes: Uint8Array): string[] {
  const keys: string[] = [];
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field !== LABELS_FIELD || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType);
      continue;
    }
    const entry = new BinaryReader(reader.bytes());
    while (entry.pos < entry.len) {
      const [f, w] = entry.tag();
      if (f === 1 && w === WireType.LengthDelimited) keys.push(entry.string());
      else entry.skip(w);
    }
  }
  return keys;
}

export function deserializeBeginRequest(bytes: Buffer): ReadBeginRequest {
  const request = BeginWindowRequest.decode(bytes);
  // Only requests that name "__proto__" somewhere pay for reading the labels twice.
  const unkeepable = bytes.includes("__proto__") ? labelKeys(bytes).filter((k) => !Object.hasOwn(request.labels, k)) : [];
  return Object.assign(request, { unkeepableLabelKeys: unkeepable });
}
