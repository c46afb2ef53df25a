/**
 * gRPC server reflection (v1 and v1alpha) answered from the compiler's own descriptors
 * (proto/gen/descriptors.binpb, written by `npm run gen`): files under the names they are imported by, with
 * their dependency lists, map entries and proto3 optionals exactly as buf compiled them. The files are sent
 * byte for byte as compiled, so strict clients (grpcurl, Python's descriptor_pool, @bufbuild/protobuf's
 * registry) accept them; @grpc/reflection re-encodes @grpc/proto-loader's objects, which they reject.
 */
import { readFileSync } from "node:fs";
import { create, createFileRegistry, fromBinary, toBinary, type DescFile, type DescMessage, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
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

let cached: Index | undefined;

function index(): Index {
  if (cached) return cached;
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
  cached = { registry, bytes, symbols, extensions };
  return cached;
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

function definition(ix: Index, version: string): { definition: ServiceDefinition; request: DescMessage; response: DescMessage } {
  const request = ix.registry.getMessage(`${version}.ServerReflectionRequest`)!;
  const response = ix.registry.getMessage(`${version}.ServerReflectionResponse`)!;
  const def: ServiceDefinition = {
    ServerReflectionInfo: {
      path: `/${version}.ServerReflection/ServerReflectionInfo`,
      requestStream: true,
      responseStream: true,
      requestSerialize: (value: any) => Buffer.from(toBinary(request, value)),
      requestDeserialize: (bytes: Buffer) => fromBinary(request, bytes),
      responseSerialize: (value: any) => Buffer.from(toBinary(response, value)),
      responseDeserialize: (bytes: Buffer) => fromBinary(response, bytes),
    },
  };
  return { definition: def, request, response };
}

/** The reflection services' own names, as listed. */
export const REFLECTION_SERVICES = VERSIONS.map((v) => `${v}.ServerReflection`);

/** Adds reflection v1 and v1alpha to server; `services` are the names `list` reports. */
export function addReflection(server: Server, services: readonly string[]): void {
  const ix = index();
  for (const version of VERSIONS) {
    const { definition: def, response } = definition(ix, version);
    server.addService(def, {
      ServerReflectionInfo: (call: ServerDuplexStream<any, any>) => {
        call.on("data", (request: any) => {
          let messageResponse: object;
          try {
            messageResponse = answer(ix, services, request);
          } catch (err) {
            if (!(err instanceof NotFound)) throw err;
            messageResponse = { case: "errorResponse", value: { errorCode: status.NOT_FOUND, errorMessage: err.message } };
          }
          call.write(create(response, { validHost: request.host, originalRequest: request, messageResponse } as any));
        });
        call.on("end", () => call.end());
      },
    });
  }
}
