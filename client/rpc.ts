/** Internal: promise-based unary calls over the generated callback clients, with deadlines and retries. */
import { Metadata, status, type CallOptions, type Client, type ClientUnaryCall, type ServiceError } from "@grpc/grpc-js";
import type { Duration } from "../proto/gen/google/protobuf/duration.js";
import { CarbonmonClientError } from "./client-error.js";

/** Options every call accepts. */
export interface CallOptionsLite {
  /** Per-attempt deadline, ms; default: the client's deadlineMs. */
  deadlineMs?: number;
  /** Aborting cancels the call (CANCELLED) and stops retrying. */
  signal?: AbortSignal;
  /** Extra request metadata. */
  metadata?: Metadata;
}

/** Called before each retry of an idempotent call. */
export type RetryListener = (info: { method: string; attempt: number; error: CarbonmonClientError; delayMs: number }) => void;

export interface RpcDefaults {
  deadlineMs: number;
  retries: number;
  onRetry?: RetryListener;
}

type Callback<Res> = (err: ServiceError | null, res: Res) => void;
type UnaryMethod<Req, Res> = (req: Req, metadata: Metadata, options: Partial<CallOptions>, cb: Callback<Res>) => ClientUnaryCall;

/** Codes worth another attempt, for idempotent calls only. */
const RETRYABLE = new Set<number>([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

function attempt<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  name: string,
  request: Req,
  deadlineMs: number,
  options: CallOptionsLite,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    if (options.signal?.aborted) return reject(new CarbonmonClientError(status.CANCELLED, "cancelled by the caller", { method: name }));
    const metadata = options.metadata?.clone() ?? new Metadata();
    const onAbort = (): void => call.cancel();
    const call = method.call(client, request, metadata, { deadline: Date.now() + deadlineMs }, (err, res) => {
      options.signal?.removeEventListener("abort", onAbort);
      if (err) reject(CarbonmonClientError.fromServiceError(err, name));
      else resolve(res);
    });
    options.signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * One unary call: `idempotent` calls are retried on UNAVAILABLE / DEADLINE_EXCEEDED up to
 * `defaults.retries` times with a small exponential backoff (50 ms, 100 ms, … ≤ 1 s, with jitter).
 */
export async function unary<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  name: string,
  request: Req,
  defaults: RpcDefaults,
  idempotent: boolean,
  options: CallOptionsLite = {},
): Promise<Res> {
  const deadlineMs = options.deadlineMs ?? defaults.deadlineMs;
  const retries = idempotent ? Math.max(0, defaults.retries) : 0;
  for (let n = 0; ; n++) {
    try {
      return await attempt(client, method, name, request, deadlineMs, options);
    } catch (err) {
      const error = err as CarbonmonClientError;
      if (n >= retries || !RETRYABLE.has(error.code) || options.signal?.aborted) throw error;
      const delayMs = Math.min(1000, 50 * 2 ** n) * (0.75 + Math.random() * 0.5);
      defaults.onRetry?.({ method: name, attempt: n + 1, error, delayMs });
      await sleep(delayMs, options.signal);
    }
  }
}

export function durationFromMs(ms: number): Duration {
  const whole = Math.floor(ms / 1000);
  return { seconds: BigInt(whole), nanos: Math.round((ms - whole * 1000) * 1e6) };
}
