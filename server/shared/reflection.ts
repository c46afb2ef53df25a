/**
 * gRPC server reflection (v1 and v1alpha) answered from the compiler's own descriptors
 * (proto/gen/descriptors.binpb, written by `npm run gen`): files under the names they are imported by, with
 * their dependency lists, map entries and proto3 optionals exactly as buf compiled them. The files are sent
 * byte for byte as compiled, so strict clients (grpcurl, Python's descriptor_pool, @bufbuild/protobuf's
 * registry) accept them; @grpc/reflection re-encodes @grpc/proto-loader's objects, which they reject.
 *
 * Nothing is loaded until the first reflection request: @bufbuild/protobuf's runtime (62 modules) and the
 * index of every descriptor cost ~140 ms of CPU, which every agent, intensity service and `carbonmon run`
 * paid at start-up although most never see a reflection request. The services' messages travel as bytes
 * and are decoded and encoded here, in order, once that is loaded.
 */
import { readFileSync } from "node:fs";
import type { DescFile, DescMessage, FileRegistry } from "@bufbuild/protobuf";
import { status, type Server, type ServerDuplexStream, type ServiceDefinition } from "@grpc/grpc-js";
import { DESCRIPTORS_FILE } from "./paths.js";

const VERSIONS = ["grpc.reflection.v1", "grpc.reflection.v1alpha"] as const;

interface Index {
  registry: FileRegistry;
  /** Every file's bytes as compiled, by file name. */
  bytes: Map<string, Uint8Array>;
  /** Fully qualified symbol (message, field, enum, enum value, service, method, extension) → its file. */
  symbols: Map<string, DescFile>;
  /** "extendee#number" → the file declaring that extension. */
  extensions: Map<string, DescFile>;
}

type Protobuf = typeof import("@bufbuild/protobuf");

/** What answering needs: the runtime and the index, loaded once per process on the first request. */
interface Loaded {
  pb: Protobuf;
  ix: Index;
}
let loading: Promise<Loaded> | undefined;

function load(): Promise<Loaded> {
  loading ??= Promise.all([import("@bufbuild/protobuf"), import("@bufbuild/protobuf/wkt")]).then(([pb, wkt]) => ({
    pb,
    ix: index(pb, wkt),
  }));
  return loading;
}

function index(pb: Protobuf, wkt: typeof import("@bufbuild/protobuf/wkt")): Index {
  const { createFileRegistry, fromBinary, toBinary } = pb;
  const { FileDescriptorProtoSchema, FileDescriptorSetSchema } = wkt;
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTORS_FILE));
  const registry = createFileRegistry(set);
  const bytes = new Map(set.file.map((f) => [f.name, toBinary(FileDescriptorProtoSchema, f)] as const));
  const symbols = new Map<string, DescFile>();
  const extensions = new Map<string, DescFile>();
  for (const desc of registry) {
    symbols.set(desc.typeName, desc.file);
    if (desc.kind === "service") for (const m of desc.methods) symbols.set(`${desc.typeName}.${m.name}`, desc.file);
    if (desc.kind === "message") for (const f of desc.fields) symbols.set(`${desc.typeName}.${f.name}`, desc.file);
    if (desc.kind === "enum") {
      const scope = desc.typeName.slice(0, desc.typeName.lastIndexOf(".") + 1);
      for (const v of desc.values) symbols.set(`${scope}${v.name}`, desc.file);
    }
    if (desc.kind === "extension") extensions.set(`${desc.extendee.typeName}#${desc.number}`, desc.file);
  }
  return { registry, bytes, symbols, extensions };
}

class NotFound extends Error {}

/** The file first, then every file it imports, transitively, each once. */
function withDependencies(file: DescFile): DescFile[] {
  const out: DescFile[] = [];
  const visit = (f: DescFile): void => {
    if (out.includes(f)) return;
    out.push(f);
    f.dependencies.forEach(visit);
  };
  visit(file);
  return out;
}

function answer(ix: Index, services: readonly string[], request: any): object {
  const req = request.messageRequest as { case: string | undefined; value: any };
  const files = (file: DescFile | undefined, what: string) => {
    if (!file) throw new NotFound(`${what} not found`);
    return {
      case: "fileDescriptorResponse",
      value: { fileDescriptorProto: withDependencies(file).map((f) => ix.bytes.get(f.proto.name)!) },
    };
  };
  switch (req.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: services.map((name) => ({ name })) } };
    case "fileByFilename":
      return files(ix.registry.getFile(req.value), `file ${req.value}`);
    case "fileContainingSymbol":
      return files(ix.symbols.get(req.value), `symbol ${req.value}`);
    case "fileContainingExtension": {
      const key = `${req.value.containingType}#${req.value.extensionNumber}`;
      return files(ix.extensions.get(key), `extension ${key}`);
    }
    case "allExtensionNumbersOfType": {
      const message = ix.registry.getMessage(req.value);
      if (!message) throw new NotFound(`message type ${req.value} not found`);
      const numbers = [...ix.extensions.keys()].filter((k) => k.startsWith(`${req.value}#`)).map((k) => Number(k.split("#")[1]));
      return { case: "allExtensionNumbersResponse", value: { baseTypeName: req.value, extensionNumber: numbers } };
    }
    default:
      return {
        case: "errorResponse",
        value: { errorCode: status.UNIMPLEMENTED, errorMessage: `unsupported reflection request ${req.case}` },
      };
  }
}

/** The reflection services' own names, as listed. */
export const REFLECTION_SERVICES = VERSIONS.map((v) => `${v}.ServerReflection`);

/** The messages of one version's ServerReflectionInfo. */
function messages(ix: Index, version: string): { request: DescMessage; response: DescMessage } {
  return {
    request: ix.registry.getMessage(`${version}.ServerReflectionRequest`)!,
    response: ix.registry.getMessage(`${version}.ServerReflectionResponse`)!,
  };
}

/** One request's encoded response. */
function respond({ pb, ix }: Loaded, version: string, services: readonly string[], bytes: Uint8Array): Buffer {
  const { request: requestDesc, response } = messages(ix, version);
  const request: any = pb.fromBinary(requestDesc, bytes);
  let messageResponse: object;
  try {
    messageResponse = answer(ix, services, request);
  } catch (err) {
    const code = err instanceof NotFound ? status.NOT_FOUND : status.INTERNAL;
    messageResponse = { case: "errorResponse", value: { errorCode: code, errorMessage: (err as Error).message } };
  }
  return Buffer.from(
    pb.toBinary(response, pb.create(response, { validHost: request.host, originalRequest: request, messageResponse } as any)),
  );
}

const asBytes = (b: Buffer): Buffer => b;

/** Adds reflection v1 and v1alpha to server; `services` are the names `list` reports. */
export function addReflection(server: Server, services: readonly string[]): void {
  for (const version of VERSIONS) {
    const def: ServiceDefinition = {
      ServerReflectionInfo: {
        path: `/${version}.ServerReflection/ServerReflectionInfo`,
        requestStream: true,
        responseStream: true,
        requestSerialize: asBytes,
        requestDeserialize: asBytes,
        responseSerialize: asBytes,
        responseDeserialize: asBytes,
      },
    };
    server.addService(def, {
      ServerReflectionInfo: (call: ServerDuplexStream<Buffer, Buffer>) => {
        // Requests are answered in order, each once the runtime is loaded (at once after the first).
        let previous: Promise<void> = Promise.resolve();
        let failed = false;
        const fail = (code: status, details: string): void => {
          failed = true;
          call.emit("error", { code, details });
        };
        call.on("data", (bytes: Buffer) => {
          previous = previous.then(async () => {
            if (failed) return;
            let loaded: Loaded;
            try {
              loaded = await load();
            } catch (err) {
              return fail(status.INTERNAL, `reflection is unavailable: ${(err as Error).message}`);
            }
            try {
              call.write(respond(loaded, version, services, bytes));
            } catch (err) {
              fail(status.INVALID_ARGUMENT, `not a ServerReflectionRequest: ${(err as Error).message}`);
            }
          });
        });
        call.on("end", () => {
          previous = previous.then(() => {
            if (!failed) call.end();
          });
        });
      },
    });
  }
}
