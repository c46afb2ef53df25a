/**
 * Machine-readable output for scripts: `--json` is canonical protobuf JSON (the proto3 JSON mapping that
 * grpcurl, protojson and Python's json_format print: lowerCamel names, enum names, int64 as strings,
 * Timestamp/Duration as strings, default values left out, so no nulls), on one line. ts-proto's toJSON is
 * close but not that (Duration as {"nanos":…}), so messages are re-read through the compiler's
 * descriptors (proto/gen/descriptors.binpb) and printed by @bufbuild/protobuf.
 * `-o FILE` writes what would go to the terminal into FILE instead (replacing it).
 */
import { readFileSync, writeFileSync } from "node:fs";
import type { FileRegistry } from "@bufbuild/protobuf";
import { DESCRIPTORS_FILE } from "../../server/shared/paths.js";
import type { Output } from "./io.js";

/**
 * The printer, loaded on the first `--json`: @bufbuild/protobuf's runtime is 62 modules, a third of what a
 * command that prints a table loads (measured: 180 ms of CPU for `carbonmon host` with it, ~120 without).
 */
let printer: Promise<(typeName: string, bytes: Uint8Array) => string> | undefined;

async function loadPrinter(): Promise<(typeName: string, bytes: Uint8Array) => string> {
  const [{ createFileRegistry, fromBinary, toJsonString }, { FileDescriptorSetSchema }] = await Promise.all([
    import("@bufbuild/protobuf"),
    import("@bufbuild/protobuf/wkt"),
  ]);
  const registry: FileRegistry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTORS_FILE)));
  return (typeName, bytes) => {
    const desc = registry.getMessage(typeName);
    if (!desc) throw new Error(`no descriptor for ${typeName}`);
    return toJsonString(desc, fromBinary(desc, bytes), { registry });
  };
}

/** A ts-proto codec: what every generated message type offers. */
export interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
}

/** One line of canonical protobuf JSON for `message` of the fully qualified type `typeName`. */
export async function protoJson<T>(typeName: string, codec: Codec<T>, message: T): Promise<string> {
  printer ??= loadPrinter();
  return (await printer)(typeName, codec.encode(message).finish());
}

/** Options every printing command takes. */
export const OUTPUT_OPTIONS = { json: { type: "boolean" }, output: { type: "string", short: "o" } } as const;

export const OUTPUT_HELP = `  --json          the result as canonical protobuf JSON on one line (enum names, no nulls; as grpcurl prints)
  -o, --output FILE   write the result to FILE instead of stdout
`;

/** Writes `text` to `file` when given, else to `stream`. */
export function emit(text: string, file: string | undefined, stream: Output): void {
  if (file !== undefined) writeFileSync(file, text);
  else stream.write(text);
}
