/**
 * The standard gRPC health service (grpc.health.v1.Health: Check, Watch, List), as Kubernetes' gRPC probes
 * and grpc_health_probe call it.
 *
 * Hand-written on purpose: grpc-health-check (the gRPC project's own package, whose behaviour this follows:
 * NOT_FOUND for an unknown service in Check, SERVICE_UNKNOWN then updates in Watch, RESOURCE_EXHAUSTED past
 * 100 services in List) builds its service definition with protobufjs when it is imported, which alone
 * cost the agent about 6 MB of its 100 MB idle budget. Four tiny messages are encoded here with
 * @bufbuild/protobuf's wire writer instead. The tests call it through the package's own health.proto with
 * @grpc/proto-loader, so the contract is checked against upstream's definition.
 */
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { sendUnaryData, Server, ServerUnaryCall, ServerWritableStream, ServiceDefinition } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";

export type ServingStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

const STATUS_NUMBER: Record<ServingStatus, number> = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 };
/** As grpc-health-check: List refuses past this many services. */
const LIST_LIMIT = 100;

interface CheckRequest {
  service: string;
}

/** HealthCheckRequest (and HealthListRequest, which has no fields): field 1, the service name. */
function decodeRequest(bytes: Buffer): CheckRequest {
  const reader = new BinaryReader(bytes);
  let service = "";
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) service = reader.string();
    else reader.skip(wireType);
  }
  return { service };
}

/** HealthCheckResponse: field 1, the status enum. */
function writeResponse(writer: BinaryWriter, s: ServingStatus): BinaryWriter {
  const n = STATUS_NUMBER[s];
  if (n !== 0) writer.uint32((1 << 3) | WireType.Varint).int32(n);
  return writer;
}

function encodeResponse(s: ServingStatus): Buffer {
  return Buffer.from(writeResponse(new BinaryWriter(), s).finish());
}

/** HealthListResponse: field 1, map<string, HealthCheckResponse> (entries: key = 1, value = 2). */
function encodeList(statuses: ReadonlyMap<string, ServingStatus>): Buffer {
  const writer = new BinaryWriter();
  for (const [name, s] of statuses) {
    writer.uint32((1 << 3) | WireType.LengthDelimited).fork();
    writer.uint32((1 << 3) | WireType.LengthDelimited).string(name);
    writer.uint32((2 << 3) | WireType.LengthDelimited).fork();
    writeResponse(writer, s);
    writer.join();
    writer.join();
  }
  return Buffer.from(writer.finish());
}

const method = (name: string, responseStream: boolean, responseSerialize: (value: never) => Buffer) => ({
  path: `/grpc.health.v1.Health/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: (r: CheckRequest) => Buffer.from(new BinaryWriter().uint32(10).string(r.service).finish()),
  requestDeserialize: decodeRequest,
  responseSerialize,
  responseDeserialize: (b: Buffer) => b,
});

const HEALTH_SERVICE = {
  check: method("Check", false, encodeResponse),
  watch: method("Watch", true, encodeResponse),
  list: method("List", false, encodeList),
} as unknown as ServiceDefinition;

/** Serving statuses by service name ("" is the server as a whole), and the Watch streams that follow them. */
export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<(s: ServingStatus) => void>>();

  constructor(initial: Record<string, ServingStatus> = {}) {
    for (const [name, s] of Object.entries(initial)) this.statuses.set(name, s);
  }

  setStatus(service: string, s: ServingStatus): void {
    this.statuses.set(service, s);
    for (const watcher of this.watchers.get(service) ?? []) watcher(s);
  }

  addToServer(server: Server): void {
    server.addService(HEALTH_SERVICE, {
      check: (call: ServerUnaryCall<CheckRequest, ServingStatus>, callback: sendUnaryData<ServingStatus>) => {
        const s = this.statuses.get(call.request.service);
        if (s) callback(null, s);
        else callback({ code: status.NOT_FOUND, details: `Health status unknown for service ${call.request.service}` });
      },
      watch: (call: ServerWritableStream<CheckRequest, ServingStatus>) => {
        const name = call.request.service;
        const watcher = (s: ServingStatus): void => void call.write(s);
        let set = this.watchers.get(name);
        if (!set) this.watchers.set(name, (set = new Set()));
        set.add(watcher);
        call.on("cancelled", () => set.delete(watcher));
        call.write(this.statuses.get(name) ?? "SERVICE_UNKNOWN");
      },
      list: (
        _call: ServerUnaryCall<CheckRequest, ReadonlyMap<string, ServingStatus>>,
        callback: sendUnaryData<ReadonlyMap<string, ServingStatus>>,
      ) => {
        if (this.statuses.size > LIST_LIMIT) callback({ code: status.RESOURCE_EXHAUSTED, details: "Too many services to list." });
        else callback(null, this.statuses);
      },
    });
  }
}
