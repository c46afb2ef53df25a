/**
 * A strict reflection client, as grpcurl works: it knows nothing of carbonmon's protos. It asks the server's
 * reflection service for the files defining a service, builds a registry from those answers alone with
 * @bufbuild/protobuf's createFileRegistry (which fails on a missing dependency, a wrong file name or a
 * malformed descriptor), and makes dynamic calls with requests and responses in canonical protobuf JSON.
 * The reflection transport itself is loaded from @grpc/reflection's own .proto files (client side only).
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import {
  createFileRegistry,
  fromBinary,
  fromJson,
  toBinary,
  toJson,
  type DescMethod,
  type FileRegistry,
  type JsonValue,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Client, credentials, loadPackageDefinition, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

export type ReflectionVersion = "v1" | "v1alpha";

const require = createRequire(import.meta.url);
const PROTO_DIR = join(dirname(require.resolve("@grpc/reflection/package.json")), "build/proto");

function reflectionClient(version: ReflectionVersion, address: string): Client & Record<string, any> {
  const def = loadSync(join(PROTO_DIR, `grpc/reflection/${version}/reflection.proto`), { keepCase: true, oneofs: true, longs: Number });
  const ctor = (loadPackageDefinition(def) as any).grpc.reflection[version].ServerReflection;
  return new ctor(address, credentials.createInsecure());
}

/** One reflection stream; `ask` sends a request and resolves with its response (errors become rejections). */
export class Reflection {
  private readonly client: Client & Record<string, any>;
  private readonly stream: ClientDuplexStream<object, any>;
  private readonly waiting: Array<{ resolve: (r: any) => void; reject: (e: Error) => void }> = [];

  constructor(address: string, version: ReflectionVersion = "v1") {
    this.client = reflectionClient(version, address);
    this.stream = this.client.ServerReflectionInfo();
    this.stream.on("data", (res: any) => this.waiting.shift()?.resolve(res));
    this.stream.on("error", (err: Error) => this.waiting.splice(0).forEach((w) => w.reject(err)));
  }

  private ask(request: object): Promise<any> {
    return new Promise((resolve, reject) => {
      this.waiting.push({
        resolve: (res) => (res.error_response ? reject(new Error(`reflection: ${res.error_response.error_message}`)) : resolve(res)),
        reject,
      });
      this.stream.write(request);
    });
  }

  async listServices(): Promise<string[]> {
    const res = await this.ask({ list_services: "*" });
    return res.list_services_response.service.map((s: { name: string }) => s.name);
  }

  async fileContainingSymbol(symbol: string): Promise<FileDescriptorProto[]> {
    const res = await this.ask({ file_containing_symbol: symbol });
    return res.file_descriptor_response.file_descriptor_proto.map((b: Uint8Array) => fromBinary(FileDescriptorProtoSchema, b));
  }

  async fileByFilename(name: string): Promise<FileDescriptorProto[]> {
    const res = await this.ask({ file_by_filename: name });
    return res.file_descriptor_response.file_descriptor_proto.map((b: Uint8Array) => fromBinary(FileDescriptorProtoSchema, b));
  }

  /** A registry of everything the named services need, built from the reflection answers alone. */
  async registryFor(services: readonly string[]): Promise<FileRegistry> {
    const registries: FileRegistry[] = [];
    for (const service of services) {
      const files = await this.fileContainingSymbol(service);
      const byName = new Map(files.map((f) => [f.name, f]));
      // files[0] defines the symbol; every import must be among the answer's files, under its import name.
      registries.push(createFileRegistry(files[0]!, (name) => byName.get(name)));
    }
    return createFileRegistry(...registries);
  }

  close(): void {
    this.stream.end();
    this.client.close();
  }
}

export function findMethod(registry: FileRegistry, fullName: string): DescMethod {
  const [service, method] = fullName.split("/");
  const desc = registry.getService(service!);
  const m = desc?.methods.find((x) => x.name === method);
  if (!m) throw new Error(`${fullName}: not in the reflected descriptors`);
  return m;
}

/**
 * Calls a method dynamically (`carbonmon.agent.v1.EnergyMonitor/GetHost`) with a JSON request; resolves with
 * the responses as canonical protobuf JSON (one for unary, up to `maxMessages` for server streaming).
 */
export async function dynamicCall(
  address: string,
  registry: FileRegistry,
  fullName: string,
  request: JsonValue = {},
  maxMessages = 1,
): Promise<JsonValue[]> {
  const method = findMethod(registry, fullName);
  const client = new Client(address, credentials.createInsecure());
  const path = `/${fullName}`;
  const serialize = (value: any): Buffer => Buffer.from(toBinary(method.input, value));
  const deserialize = (bytes: Buffer): any => fromBinary(method.output, bytes);
  const req = fromJson(method.input, request, { registry });
  const json = (msg: any): JsonValue => toJson(method.output, msg, { registry });
  try {
    if (method.methodKind === "unary") {
      return await new Promise((resolve, reject) =>
        client.makeUnaryRequest(path, serialize, deserialize, req, (err: ServiceError | null, res?: any) =>
          err ? reject(err) : resolve([json(res)]),
        ),
      );
    }
    if (method.methodKind !== "server_streaming") throw new Error(`${fullName}: ${method.methodKind} is not supported here`);
    return await new Promise((resolve, reject) => {
      const out: JsonValue[] = [];
      const call = client.makeServerStreamRequest(path, serialize, deserialize, req);
      call.on("data", (msg: any) => {
        out.push(json(msg));
        if (out.length >= maxMessages) {
          call.cancel();
          resolve(out);
        }
      });
      call.on("error", (err: ServiceError) => (out.length >= maxMessages ? undefined : reject(err)));
      call.on("end", () => resolve(out));
    });
  } finally {
    client.close();
  }
}
