/**
 * Writes proto/gen/descriptors.binpb: the FileDescriptorSet that server reflection serves, as the compiler
 * (buf) builds it from proto/: real file names, dependency lists, map entries, proto3 optionals, comments.
 * Strict reflection clients (grpcurl, Python's descriptor_pool, @bufbuild/protobuf's registry) need exactly
 * that; @grpc/proto-loader's re-encoded objects were rejected by them.
 *
 * The set also holds grpc.health.v1 (from grpc-health-check's health.proto, named as upstream imports it:
 * grpc/health/v1/health.proto) and grpc.reflection v1 and v1alpha (from @grpc/reflection), so that `list`
 * and `describe` work for every service the servers offer, and the reflection service itself is encoded
 * with these descriptors (server/shared/reflection.ts).
 *
 * Usage: node --import tsx scripts/gen-descriptors.ts [OUT_ROOT]  (default: the repository root)
 */
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BUF = join(ROOT, "node_modules/.bin/buf");
const require = createRequire(import.meta.url);
const HEALTH_DIR = join(dirname(require.resolve("grpc-health-check/package.json")), "proto");
const REFLECTION_DIR = join(dirname(require.resolve("@grpc/reflection/package.json")), "build/proto");
export const DESCRIPTORS_PATH = "proto/gen/descriptors.binpb";

function bufBuild(input: string[], tmp: string, name: string): Uint8Array {
  const out = join(tmp, name);
  execFileSync(BUF, ["build", ...input, "-o", out], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
  return readFileSync(out);
}

export function generateDescriptors(outRoot: string = ROOT): string {
  const tmp = mkdtempSync(join(tmpdir(), "carbonmon-desc-"));
  try {
    const contract = fromBinary(FileDescriptorSetSchema, bufBuild([], tmp, "contract.binpb"));
    const health = fromBinary(FileDescriptorSetSchema, bufBuild([HEALTH_DIR], tmp, "health.binpb"));
    for (const f of health.file) if (f.name === "health/v1/health.proto") f.name = "grpc/health/v1/health.proto";
    const reflection = fromBinary(
      FileDescriptorSetSchema,
      bufBuild([REFLECTION_DIR, "--path", join(REFLECTION_DIR, "grpc/reflection")], tmp, "reflection.binpb"),
    );
    contract.file.push(...health.file, ...reflection.file);
    const path = join(outRoot, DESCRIPTORS_PATH);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, toBinary(FileDescriptorSetSchema, contract));
    return path;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(`wrote ${generateDescriptors(process.argv[2] ?? ROOT)}`);
}
