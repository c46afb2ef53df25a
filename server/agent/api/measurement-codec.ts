/**
 * An ended window's result as stored and as sent: the Measurement's protobuf bytes, encoded once. The
 * store journals the bytes before EndWindow is answered, and the service's serializer sends the very same
 * bytes, so a result costs one encoding (not one for the wire plus a JSON rendering for the database).
 *
 * The bytes are remembered per Measurement object: whoever changes a Measurement after encoding it (the
 * carbon pricer fills in grams) must encode it again before it is sent.
 */
import { Measurement } from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import { encodeMeasurement } from "./measurement-wire.js";

const encoded = new WeakMap<Measurement, Uint8Array>();

/** Encodes a result and remembers the bytes for the wire. */
export function encodeResult(m: Measurement): Uint8Array {
  const bytes = encodeMeasurement(m);
  encoded.set(m, bytes);
  return bytes;
}

/** A stored result: protobuf bytes, or the JSON that agents before the journal stored. */
export function decodeResult(stored: Uint8Array | string): Measurement {
  if (typeof stored === "string") return Measurement.fromJSON(JSON.parse(stored));
  const m = Measurement.decode(stored);
  encoded.set(m, stored);
  return m;
}

/** The gRPC serializer for Measurement responses: the remembered bytes when there are any. */
export function serializeMeasurement(m: Measurement): Buffer {
  const bytes = encoded.get(m) ?? encodeMeasurement(m);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
