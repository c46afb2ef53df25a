/**
 * Machine-readable output for scripts: `--json` is canonical protobuf JSON (the proto3 JSON mapping that
 * grpcurl, protojson and Python's json_format print: lowerCamel names, enum names, int64 as strings,
 * Timestamp/Duration as strings, default values left out, so no nulls), on one line. ts-proto's toJSON is
 * close but not that (Duration as {"nanos":…}), so messages are re-read through the compiler's
 * descriptors (proto/gen/descriptors.binpb) and printed by @bufbuild/protobuf.
 * `-o FILE` writes what would go to the terminal into FILE instead (replacing it).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { createFileRegistry, fromBinary, toJsonString, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { DESCRIPTORS_FILE } from "../../server/shared/reflection.js";

let registry: FileRegistry | undefined;

/** A ts-proto codec: what every generated message type offers. */
export interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
}

/** One line of canonical protobuf JSON for `message` of the fully qualified type `typeName`. */
export function protoJson<T>(typeName: string, codec: Codec<T>, message: T): string {
  registry ??= createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTORS_FILE)));
  const desc = registry.getMessage(typeName);
  if (!desc) throw new Error(`no descriptor for ${typeName}`);
  return toJsonString(desc, fromBinary(desc, codec.encode(message).finish()), { registry });
}

/** Options every printing command takes. */
export const OUTPUT_OPTIONS = { json: { type: "boolean" }, output: { type: "string", short: "o" } } as const;

export const OUTPUT_HELP = `  --json          the result as canonical protobuf JSON on one line (enum names, no nulls; as grpcurl prints)
  -o, --output FILE   write the result to FILE instead of stdout
`;

/** Writes `text` to `file` when given, else to `stream`. */
export function emit(text: string, file: string | undefined, stream: NodeJS.WritableStream = process.stdout): void {
  if (file !== undefined) writeFileSync(file, text);
  else stream.write(text);
}
