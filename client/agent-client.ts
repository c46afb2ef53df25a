/** createAgentClient: the EnergyMonitor agent as promises, with deadlines, retries and typed errors. */
import { status, type ChannelCredentials, type ChannelOptions, type ClientReadableStream } from "@grpc/grpc-js";
import {
  EnergyMonitorClient,
  type BeginWindowRequest,
  type BeginWindowResponse,
  type CancelWindowResponse,
  type GetHostResponse,
  type PowerSample,
  type WatchPowerRequest,
  type WindowInfo,
} from "../proto/gen/carbonmon/agent/v1/agent.js";
import { channelSecurity, type ClientSecurityOptions } from "./security.js";
import { CarbonmonClientError } from "./client-error.js";
import { toCarbonEmissionMeasurement, type CarbonEmissionMeasurement } from "./measurement.js";
import { durationFromMs, unary, type CallOptionsLite, type RetryListener, type RpcDefaults } from "./rpc.js";

export interface AgentClientOptions {
  /** Per-attempt deadline of unary calls, ms; default 10,000. */
  deadlineMs?: number;
  /** Retries of idempotent calls (GetHost, EndWindow, GetWindow, ListWindows) on UNAVAILABLE / DEADLINE_EXCEEDED; default 2. */
  retries?: number;
  /** Default: insecure (plaintext). */
  credentials?: ChannelCredentials;
  /** TLS (mutual with a client certificate) and a bearer token; `clientSecurityFromFiles` reads them from files. */
  security?: ClientSecurityOptions;
  /**
   * The CUDA_VISIBLE_DEVICES sent with BeginWindow and WatchPower so that GPU indices mean what this
   * process's framework means. Default: this process's `CUDA_VISIBLE_DEVICES` (none sent when unset);
   * `null`: send none (the agent's own value applies).
   */
  cudaVisibleDevices?: string | null;
  /** grpc-js channel options. */
  channelOptions?: ChannelOptions;
  /** Called before each retry (logging, tests). */
  onRetry?: RetryListener;
}

export interface BeginWindowOptions extends CallOptionsLite {
  /** GPUs in the caller's numbering; empty: every GPU (unless skipGpus). */
  gpuIndices?: number[];
  /** CPU packages (with their DRAM); empty: every package (unless skipCpus). */
  cpuIndices?: number[];
  labels?: Record<string, string>;
  skipGpus?: boolean;
  skipCpus?: boolean;
  /** Overrides the client's cudaVisibleDevices for this call; null sends none. */
  cudaVisibleDevices?: string | null;
}

export interface EndWindowOptions extends CallOptionsLite {
  /**
   * Wait (≤ ~100 ms) for the next counter update so that the end edge is interpolated (default true, as
   * the CLI and the Python package do). false answers at once with the end extrapolated, whose bound covers
   * anything the devices could draw since their last reading (up to ~70 J per 700 W GPU).
   */
  waitForCounterUpdate?: boolean;
}

export interface WatchPowerOptions {
  gpuIndices?: number[];
  cpuIndices?: number[];
  /** Default 1 s (the agent's); at least the agent's sampling period. */
  periodMs?: number;
  skipGpus?: boolean;
  skipCpus?: boolean;
  cudaVisibleDevices?: string | null;
  /** Aborting ends the iteration (and cancels the stream). */
  signal?: AbortSignal;
}

export interface MeasureResult<T> {
  result: T;
  measurement: CarbonEmissionMeasurement;
}

export interface AgentClient {
  readonly address: string;
  /** The generated client, for anything not wrapped here. */
  readonly raw: EnergyMonitorClient;
  getHost(options?: CallOptionsLite): Promise<GetHostResponse>;
  beginWindow(key: string, options?: BeginWindowOptions): Promise<BeginWindowResponse>;
  endWindow(key: string, options?: EndWindowOptions): Promise<CarbonEmissionMeasurement>;
  getWindow(key: string, options?: CallOptionsLite): Promise<CarbonEmissionMeasurement>;
  listWindows(options?: CallOptionsLite & { includeEnded?: boolean }): Promise<WindowInfo[]>;
  cancelWindow(key: string, options?: CallOptionsLite): Promise<CancelWindowResponse>;
  /** Runs fn inside a window `key`; the window is ended even when fn throws (then fn's error is rethrown). */
  measure<T>(
    key: string,
    fn: () => Promise<T> | T,
    options?: BeginWindowOptions & { waitForCounterUpdate?: boolean },
  ): Promise<MeasureResult<T>>;
  /** Power samples as an async iterable; leaving the loop (break, return, throw) cancels the stream. */
  watchPower(options?: WatchPowerOptions): AsyncIterable<PowerSample>;
  close(): void;
}

export function createAgentClient(address: string, options: AgentClientOptions = {}): AgentClient {
  const channel = channelSecurity(options.security ?? {}, options.credentials);
  const raw = new EnergyMonitorClient(address, channel.credentials, { ...options.channelOptions, interceptors: channel.interceptors });
  const defaults: RpcDefaults = { deadlineMs: options.deadlineMs ?? 10_000, retries: options.retries ?? 2, onRetry: options.onRetry };
  const clientCvd = options.cudaVisibleDevices === undefined ? process.env.CUDA_VISIBLE_DEVICES : options.cudaVisibleDevices;
  const cvd = (override: string | null | undefined): string | undefined => {
    const value = override === undefined ? clientCvd : override;
    return value === null || value === undefined ? undefined : value;
  };

  const client: AgentClient = {
    address,
    raw,
    getHost: (o) => unary(raw, raw.getHost, "GetHost", {}, defaults, true, o),
    beginWindow(key, o = {}) {
      const request: BeginWindowRequest = {
        key,
        gpuIndices: o.gpuIndices ?? [],
        cpuIndices: o.cpuIndices ?? [],
        labels: o.labels ?? {},
        skipGpus: o.skipGpus ?? false,
        skipCpus: o.skipCpus ?? false,
        cudaVisibleDevices: cvd(o.cudaVisibleDevices),
      };
      return unary(raw, raw.beginWindow, "BeginWindow", request, defaults, false, o);
    },
    async endWindow(key, o = {}) {
      // EndWindow is idempotent by design: a repeat returns the stored result.
      const m = await unary(
        raw,
        raw.endWindow,
        "EndWindow",
        { key, waitForCounterUpdate: o.waitForCounterUpdate ?? true },
        defaults,
        true,
        o,
      );
      return toCarbonEmissionMeasurement(m);
    },
    async getWindow(key, o) {
      return toCarbonEmissionMeasurement(await unary(raw, raw.getWindow, "GetWindow", { key }, defaults, true, o));
    },
    async listWindows(o = {}) {
      return (await unary(raw, raw.listWindows, "ListWindows", { includeEnded: o.includeEnded ?? false }, defaults, true, o)).windows;
    },
    cancelWindow: (key, o) => unary(raw, raw.cancelWindow, "CancelWindow", { key }, defaults, false, o),
    async measure(key, fn, o = {}) {
      await client.beginWindow(key, o);
      let result: Awaited<ReturnType<typeof fn>>;
      try {
        result = await fn();
      } catch (err) {
        // End the window anyway; fn's error wins over a failure to end it.
        await client.endWindow(key, { ...o, waitForCounterUpdate: o.waitForCounterUpdate }).catch(() => undefined);
        throw err;
      }
      const measurement = await client.endWindow(key, { ...o, waitForCounterUpdate: o.waitForCounterUpdate });
      return { result, measurement };
    },
    watchPower(o = {}) {
      const request: WatchPowerRequest = {
        gpuIndices: o.gpuIndices ?? [],
        cpuIndices: o.cpuIndices ?? [],
        period: o.periodMs === undefined ? undefined : durationFromMs(o.periodMs),
        skipGpus: o.skipGpus ?? false,
        skipCpus: o.skipCpus ?? false,
        cudaVisibleDevices: cvd(o.cudaVisibleDevices),
      };
      return { [Symbol.asyncIterator]: () => powerSamples(raw, request, o.signal) };
    },
    close: () => raw.close(),
  };
  return client;
}

/**
 * The stream is read as fast as it arrives, never paused, and only the latest sample is kept for a
 * consumer that is slower than the period: the samples it did not take are folded into the next one's
 * `skipped` (each counts itself and the ticks it had skipped), so Σ(1 + skipped) still counts every tick.
 * Pausing the gRPC stream instead would let HTTP/2 fill its flow-control window (64 KiB, hundreds of
 * samples) with samples that are stale by the time they are read.
 */
async function* powerSamples(raw: EnergyMonitorClient, request: WatchPowerRequest, signal?: AbortSignal): AsyncGenerator<PowerSample> {
  if (signal?.aborted) return;
  const stream: ClientReadableStream<PowerSample> = raw.watchPower(request);
  let cancelled = false;
  let latest: PowerSample | undefined;
  let done = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    wake?.();
    wake = undefined;
  };
  const cancel = (): void => {
    if (cancelled) return;
    cancelled = true;
    stream.cancel();
  };
  signal?.addEventListener("abort", cancel, { once: true });
  stream.on("data", (sample: PowerSample) => {
    // Not taken yet: the new sample stands for it and for the ticks it had skipped.
    if (latest) sample.skipped += 1n + latest.skipped;
    latest = sample;
    notify();
  });
  stream.on("error", (err) => {
    failure ??= err;
    done = true;
    notify();
  });
  stream.on("end", () => {
    done = true;
    notify();
  });
  try {
    for (;;) {
      if (latest) {
        const sample = latest;
        latest = undefined;
        yield sample;
        continue;
      }
      if (done) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    if (failure !== undefined) {
      const error = CarbonmonClientError.fromServiceError(failure, "WatchPower");
      if (!(cancelled && error.code === status.CANCELLED)) throw error;
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
    cancel();
  }
}
