/**
 * gRPC server metrics under the names go-grpc-prometheus made standard (grpc_server_started_total,
 * grpc_server_handled_total, grpc_server_handling_seconds), and the access log: one debug line per RPC.
 * A service registration is wrapped handler by handler (unary and server streaming), so serve.ts stays
 * as it is. Per call, the wrapper costs one closure, two clock reads, one histogram observation (through a
 * labelled child made once per method) and two plain additions: the counters are kept as numbers per
 * method and status code and added to prom-client's counters when they are collected (at scrape time),
 * since a prom-client counter hashes its labels on every increment.
 */
import {
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { Counter, Histogram, type Registry } from "prom-client";
import type { Logger } from "../log.js";
import type { ServiceRegistration } from "../serve.js";

/** Seconds: from a fast unary answer (~50 µs) to an EndWindow waiting for pricing (seconds). */
const HANDLING_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const CODE_NAMES: string[] = [];
for (const [name, value] of Object.entries(status)) if (typeof value === "number") CODE_NAMES[value] = name;

export interface GrpcMetrics {
  started: Counter<"grpc_type" | "grpc_service" | "grpc_method">;
  handled: Counter<"grpc_type" | "grpc_service" | "grpc_method" | "grpc_code">;
  handling: Histogram<"grpc_type" | "grpc_service" | "grpc_method">;
  /** Each method's pending counts, added to the counters when they are collected. */
  readonly flushers: Set<() => void>;
}

export function grpcMetrics(registry: Registry): GrpcMetrics {
  const labelNames = ["grpc_type", "grpc_service", "grpc_method"] as const;
  const flushers = new Set<() => void>();
  const flush = (): void => flushers.forEach((f) => f());
  return {
    started: new Counter({
      name: "grpc_server_started_total",
      help: "RPCs started on the server.",
      labelNames,
      registers: [registry],
      collect: flush,
    }),
    handled: new Counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, whatever their status code.",
      labelNames: [...labelNames, "grpc_code"],
      registers: [registry],
      collect: flush,
    }),
    handling: new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Time from an RPC's start to its status, seconds.",
      labelNames,
      buckets: HANDLING_BUCKETS,
      registers: [registry],
    }),
    flushers,
  };
}

export interface InstrumentOptions {
  /** Metrics to record into; undefined: the access log only. */
  metrics: GrpcMetrics | undefined;
  log: Logger;
  /** The caller's principal name for the access log (authentication sets it); undefined: none. */
  principalOf?: (call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>) => string | undefined;
}

type Unary = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => void;
type ServerStreaming = (call: ServerWritableStream<unknown, unknown>) => void;

/** One method's labelled children and names, made once. */
class MethodRecorder {
  /** RPCs started and completed per status code since the counters were last collected. */
  private startedPending = 0;
  private readonly handledPending = new Float64Array(CODE_NAMES.length);
  private readonly handling: { observe(v: number): void } | undefined;

  constructor(
    private readonly options: InstrumentOptions,
    type: string,
    private readonly serviceName: string,
    readonly method: string,
  ) {
    const metrics = options.metrics;
    this.handling = metrics?.handling.labels(type, serviceName, method);
    if (!metrics) return;
    const started = metrics.started.labels(type, serviceName, method);
    const handled = CODE_NAMES.map((name) => metrics.handled.labels(type, serviceName, method, name));
    started.inc(0); // the method is a series from the start
    metrics.flushers.add(() => {
      if (this.startedPending > 0) started.inc(this.startedPending);
      this.startedPending = 0;
      for (let code = 0; code < handled.length; code++) {
        if (this.handledPending[code]! > 0) handled[code]!.inc(this.handledPending[code]);
        this.handledPending[code] = 0;
      }
    });
  }

  start(): number {
    this.startedPending++;
    return performance.now();
  }

  done(startMs: number, code: number, call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>): void {
    const ms = performance.now() - startMs;
    if (this.handling) {
      if (code >= 0 && code < this.handledPending.length) this.handledPending[code]!++;
      this.handling.observe(ms / 1000);
    }
    const log = this.options.log;
    if (!log.isLevelEnabled("debug")) return;
    const request = call.request as { key?: unknown } | undefined;
    log.debug(
      {
        rpc: `${this.serviceName}/${this.method}`,
        code: CODE_NAMES[code] ?? code,
        ms: Math.round(ms * 1000) / 1000,
        principal: this.options.principalOf?.(call),
        key: typeof request?.key === "string" && request.key !== "" ? request.key : undefined,
        peer: call.getPeer(),
      },
      "rpc",
    );
  }
}

function instrumentUnary(handler: Unary, r: MethodRecorder): Unary {
  return (call, callback) => {
    const t0 = r.start();
    handler(call, (err, value, trailer, flags) => {
      r.done(t0, err ? (err.code ?? status.UNKNOWN) : status.OK, call);
      callback(err, value, trailer, flags);
    });
  };
}

function instrumentServerStreaming(handler: ServerStreaming, r: MethodRecorder): ServerStreaming {
  return (call) => {
    const t0 = r.start();
    let recorded = false;
    const record = (code: number): void => {
      if (recorded) return;
      recorded = true;
      r.done(t0, code, call);
    };
    // 'finish' follows the status being sent (ServerWritableStreamImpl._final); an error sets it first.
    call.once("finish", () => record((call as unknown as { pendingStatus?: { code?: number } }).pendingStatus?.code ?? status.OK));
    call.once("cancelled", () => record(status.CANCELLED));
    handler(call);
  };
}

/** The registration with every unary and server-streaming handler wrapped; others are left as they are. */
export function instrumentRegistration(registration: ServiceRegistration, options: InstrumentOptions): ServiceRegistration {
  const implementation: UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(registration.implementation)) {
    const def = (registration.definition as Record<string, { path: string; requestStream: boolean; responseStream: boolean }>)[name];
    if (!def || def.requestStream) {
      implementation[name] = handler;
      continue;
    }
    const method = def.path.slice(def.path.lastIndexOf("/") + 1);
    const type = def.responseStream ? "server_stream" : "unary";
    const recorder = new MethodRecorder(options, type, registration.name, method);
    implementation[name] = def.responseStream
      ? instrumentServerStreaming(handler as ServerStreaming, recorder)
      : instrumentUnary(handler as Unary, recorder);
  }
  return { ...registration, implementation };
}
