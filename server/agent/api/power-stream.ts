/**
 * WatchPower: streams of PowerSample read from the sampler's timelines, never from the hardware. Streams
 * with the same period form a group with one timer; each tick reads every device the group needs once and
 * writes each stream its subset. Open streams hold the sampler at full rate (setDemand "power"); with none,
 * it may sample at its idle rate.
 *
 * At most one sample per stream is unsent. A tick writes a stream only when nothing written before is still
 * unsent: grpc-js's call (a Writable) counts in writableLength the messages it buffers plus the one it is
 * writing, and that one's write completes only when Node's Http2Stream has handed it to nghttp2 as DATA,
 * which needs room in the stream's HTTP/2 flow-control window. So while a reader does not read, its window
 * fills, the one sample stays unsent, and every later tick is counted in `skipped` (carried by the next
 * sample sent) instead of being queued; once the window opens, the next tick sends the latest sample.
 * (Skipping only when write() returned false let grpc-js buffer 16 samples, its high-water mark, first.)
 * What no server can bound is what it has already sent: the bytes in the reader's flow-control window (the
 * client chooses it: 64 KiB by default; gRPC C-core clients grow it by BDP probing) and in the reader's
 * own buffers reach it first when it reads again. The TypeScript client reads continuously and keeps only
 * the latest sample (client/agent-client.ts), so for it they are never stale.
 *
 * Each tick's sample is encoded once per device selection: time, power, temperature and the simulated
 * flag are the same for every stream that watches the same devices; only the sequence, the skipped count
 * and the energy since each stream began differ, and those few fields are encoded per stream and appended
 * (encoded protobuf fields concatenate). 1,000 subscribers cost one encoding of the shared part per tick.
 */
import type { ServerWritableStream } from "@grpc/grpc-js";
import { PowerSample, type WatchPowerRequest } from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import type { AgentConfig } from "../../shared/config.js";
import { AppError, Code } from "../../shared/errors.js";
import { toServiceError } from "../../shared/grpc-status.js";
import { UtcAnchor } from "../../shared/utc-anchor.js";
import type { Logger } from "../../shared/log.js";
import { msFromDuration } from "../../shared/proto-time.js";
import type { Domain } from "../devices/energy-source.js";
import type { Sampler } from "../energy/sampler.js";
import { selectDevices, type SelectedDevice } from "../windows/selection.js";
import { WireWriter } from "./wire-writer.js";

export interface PowerHubOptions {
  config: Pick<AgentConfig, "samplingPeriodMs" | "cudaVisibleDevices"> & Partial<Pick<AgentConfig, "maxStreamsPerPrincipal">>;
  log: Logger;
  /** UTC of the samples' instants (default: a fresh anchor). */
  utc?: UtcAnchor;
}

/** Streams are written encoded PowerSample bytes (the service's serializer passes them through). */
type PowerCall = ServerWritableStream<WatchPowerRequest, Uint8Array>;
type PowerMap = "gpuPowerW" | "cpuPowerW" | "dramPowerW";

const DEFAULT_PERIOD_MS = 1000;
const MAX_PERIOD_MS = 3_600_000;
const POWER_MAP: Record<Domain, PowerMap> = { gpu: "gpuPowerW", cpu: "cpuPowerW", dram: "dramPowerW" };
/** PowerSample's per-stream fields: sequence = 2, skipped = 9, gpu/cpu/dram_energy_j = 6/7/8. */
const SEQUENCE_FIELD = 2;
const SKIPPED_FIELD = 9;
const ENERGY_FIELD: Record<Domain, number> = { gpu: 6, cpu: 7, dram: 8 };
const STREAM_END_EVENTS = ["cancelled", "close", "finish", "error"] as const;

/** One device's values at one tick, shared by every stream of the group. */
interface DeviceValues {
  powerW: number | undefined;
  /** Cumulative energy since the sampler started. */
  energyJ: number | undefined;
  temperatureC: number | undefined;
}

interface Stream {
  call: PowerCall;
  /** Who opened it (CARBONMON_MAX_STREAMS_PER_PRINCIPAL). */
  principal: string;
  group: Group;
  devices: SelectedDevice[];
  /** Streams with the same key watch the same devices under the same indices: they share a tick's encoding. */
  selectionKey: string;
  simulated: boolean;
  /** When the stream began, agent clock ms: its energies count from there. */
  beginMs: number;
  /**
   * Cumulative energy per device id at beginMs (or at its first reading after that, when it had none
   * before). Interpolated on the timeline once a reading after beginMs exists; until then extrapolated from
   * the last reading, which may be an idle period old, so it is resolved again (see energySinceStartJ).
   */
  baselineJ: Array<number | undefined>;
  /** Devices (by position in `devices`) whose baseline is still extrapolated. */
  provisional: boolean[];
  /** Per device, its energy map entry's bytes up to the value (the value is written after), and whole when 0 J. */
  energyEntries: Array<{ prefix: Uint8Array; zero: Uint8Array }>;
  lastSentMs: number;
  /** Samples sent so far: the next sample's sequence. */
  sent: number;
  /** Ticks not sent since the previous sample. */
  skipped: number;
}

interface Group {
  periodMs: number;
  timer: NodeJS.Timeout;
  streams: Set<Stream>;
}

export class PowerHub {
  private readonly groups = new Map<number, Group>();
  /** Open streams per principal. */
  private readonly byPrincipal = new Map<string, number>();
  private closed = false;

  private readonly utc: UtcAnchor;

  constructor(
    readonly sampler: Sampler,
    readonly options: PowerHubOptions,
  ) {
    this.utc = options.utc ?? new UtcAnchor();
  }

  /** Number of open WatchPower streams. */
  get streams(): number {
    let count = 0;
    for (const group of this.groups.values()) count += group.streams.size;
    return count;
  }

  /** Samples written but not yet handed to HTTP/2 as DATA, all streams together (at most one per stream). */
  get bufferedSamples(): number {
    let count = 0;
    for (const group of this.groups.values()) for (const s of group.streams) count += s.call.writableLength;
    return count;
  }

  /** Serves one WatchPower call until the client cancels or the hub closes. */
  watch(call: PowerCall, principal = ""): void {
    if (call.cancelled) return;
    try {
      if (this.closed) throw new AppError(Code.Unavailable, "agent shutting down");
      const open = this.byPrincipal.get(principal) ?? 0;
      // Per principal only with authentication: without it, everyone is the one unnamed principal ("").
      if (principal !== "" && open >= (this.options.config.maxStreamsPerPrincipal ?? Infinity)) {
        throw new AppError(
          Code.ResourceExhausted,
          `${open} WatchPower streams of this principal are open, its limit (CARBONMON_MAX_STREAMS_PER_PRINCIPAL)`,
          {
            hint: "close a stream, or share one between readers",
          },
        );
      }
      const periodMs = this.periodMs(call.request);
      const { devices } = selectDevices(this.sampler.devices(), call.request, this.options.config.cudaVisibleDevices);
      this.open(call, periodMs, devices, principal);
    } catch (err) {
      call.emit("error", toServiceError(err, this.options.log));
    }
  }

  /** Ends every stream with UNAVAILABLE ("agent shutting down") and stops the hub's timers. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const calls = [...this.groups.values()].flatMap((g) => [...g.streams].map((s) => s.call));
    for (const group of this.groups.values()) clearInterval(group.timer);
    this.groups.clear();
    this.demandChanged();
    for (const call of calls) call.emit("error", toServiceError(new AppError(Code.Unavailable, "agent shutting down")));
  }

  private periodMs(request: WatchPowerRequest): number {
    const periodMs = request.period ? msFromDuration(request.period) : 0;
    if (periodMs === 0) return DEFAULT_PERIOD_MS;
    const floorMs = this.options.config.samplingPeriodMs;
    if (periodMs < floorMs) {
      throw new AppError(
        Code.InvalidArgument,
        `period ${periodMs} ms is below the sampling period ${floorMs} ms: the hardware updates no faster`,
        {
          hint: `ask for a period of at least ${floorMs} ms, or leave it unset for 1 s`,
        },
      );
    }
    if (periodMs > MAX_PERIOD_MS) throw new AppError(Code.InvalidArgument, `period ${periodMs} ms is above the maximum of 1 hour`);
    return periodMs;
  }

  private open(call: PowerCall, periodMs: number, devices: SelectedDevice[], principal: string): void {
    const nowMs = this.sampler.now();
    const stream: Stream = {
      call,
      principal,
      group: this.joinGroup(periodMs),
      devices,
      selectionKey: devices.map((d) => `${d.deviceId}@${d.domain}:${d.index}`).join(","),
      simulated: devices.some((d) => this.sampler.snapshot(d.deviceId)?.device.simulated === true),
      beginMs: nowMs,
      baselineJ: devices.map(() => undefined),
      provisional: devices.map(() => false),
      energyEntries: devices.map((d) => energyEntry(ENERGY_FIELD[d.domain], d.index)),
      lastSentMs: nowMs,
      sent: 0,
      skipped: 0,
    };
    stream.group.streams.add(stream);
    this.byPrincipal.set(principal, (this.byPrincipal.get(principal) ?? 0) + 1);
    for (const event of STREAM_END_EVENTS) call.once(event, () => this.leave(stream));
    // Full rate from now: the sources read at once, so the next tick's values are fresh. The first sample
    // does not wait for that read (it comes from the timeline as it is).
    this.demandChanged();
    this.send(stream, new Tick(this.readDevices([stream], nowMs), this.utc.toUtcMs(nowMs)), nowMs);
  }

  /** Open streams need full-rate sampling; the last one leaving lets the sampler go idle. */
  private demandChanged(): void {
    this.sampler.setDemand("power", this.streams > 0);
  }

  private joinGroup(periodMs: number): Group {
    let group = this.groups.get(periodMs);
    if (!group) {
      const created: Group = { periodMs, timer: setInterval(() => this.tick(created), periodMs), streams: new Set() };
      created.timer.unref();
      this.groups.set(periodMs, (group = created));
    }
    return group;
  }

  private leave(stream: Stream): void {
    const group = stream.group;
    if (!group.streams.delete(stream)) return;
    const n = (this.byPrincipal.get(stream.principal) ?? 1) - 1;
    if (n > 0) this.byPrincipal.set(stream.principal, n);
    else this.byPrincipal.delete(stream.principal);
    if (group.streams.size === 0) {
      clearInterval(group.timer);
      if (this.groups.get(group.periodMs) === group) this.groups.delete(group.periodMs);
    }
    this.demandChanged();
  }

  private tick(group: Group): void {
    const nowMs = this.sampler.now();
    const tick = new Tick(this.readDevices(group.streams, nowMs), this.utc.toUtcMs(nowMs));
    for (const stream of group.streams) {
      // A stream sent a sample less than half a period ago already has a fresh one: the sample it got on
      // joining stands for this tick; a later one (ticks bunched by a busy event loop) is counted in skipped,
      // so that the samples' 1 + skipped still add up to the ticks.
      if (nowMs - stream.lastSentMs < group.periodMs / 2) {
        if (stream.sent > 1) stream.skipped++;
        continue;
      }
      // Its previous sample is still unsent (the reader's flow-control window is full): count, never queue.
      if (stream.call.writableLength > 0) stream.skipped++;
      else this.send(stream, tick, nowMs);
    }
  }

  /** Every listed device's values once, however many streams want it. */
  private readDevices(streams: Iterable<Stream>, nowMs: number): Map<string, DeviceValues> {
    const values = new Map<string, DeviceValues>();
    for (const stream of streams) {
      for (const { deviceId } of stream.devices) {
        if (values.has(deviceId)) continue;
        const snapshot = this.sampler.snapshot(deviceId);
        const energyJ = this.sampler.energyAt(deviceId, nowMs)?.energyJ;
        values.set(deviceId, { powerW: snapshot?.powerW, energyJ, temperatureC: snapshot?.temperatureC });
      }
    }
    return values;
  }

  private send(stream: Stream, tick: Tick, nowMs: number): void {
    const bytes = this.withOwnFields(stream, tick.shared(stream), tick.values);
    stream.sent++;
    stream.skipped = 0;
    stream.lastSentMs = nowMs;
    // write()'s return (false at grpc-js's high-water mark of 16) is not needed: nothing is written to a
    // stream whose previous sample is unsent, so its buffer never holds more than this one.
    stream.call.write(bytes);
  }

  /** The shared part, then the fields that differ per stream: sequence, skipped, the energy since the stream began. */
  private withOwnFields(stream: Stream, shared: Uint8Array, values: Map<string, DeviceValues>): Buffer {
    const { devices, energyEntries } = stream;
    const w = new WireWriter(shared.length + 24 + devices.length * 16);
    w.raw(shared);
    w.countField(SEQUENCE_FIELD << 3, stream.sent);
    w.countField(SKIPPED_FIELD << 3, stream.skipped);
    // This runs for every stream on every tick: entries from pre-encoded bytes, state by position, no maps.
    for (let i = 0; i < devices.length; i++) {
      const energyJ = this.energySinceStartJ(stream, i, values.get(devices[i]!.deviceId)?.energyJ);
      if (energyJ === undefined) continue;
      const entry = energyEntries[i]!;
      if (energyJ === 0) w.raw(entry.zero);
      else {
        w.raw(entry.prefix);
        w.double(energyJ);
      }
    }
    return w.written();
  }

  private energySinceStartJ(stream: Stream, i: number, cumulativeJ: number | undefined): number | undefined {
    if (cumulativeJ === undefined) return undefined;
    let baselineJ = stream.baselineJ[i];
    if (baselineJ === undefined || stream.provisional[i]) {
      const edge = this.sampler.energyAt(stream.devices[i]!.deviceId, stream.beginMs);
      stream.provisional[i] = edge?.kind === "extrapolated";
      baselineJ = edge?.energyJ ?? baselineJ ?? cumulativeJ;
      stream.baselineJ[i] = baselineJ;
    }
    return Math.max(0, cumulativeJ - baselineJ);
  }
}

/**
 * A map<uint32, double> entry of field `field` for key `index`, as ts-proto writes it (the key even when 0,
 * the value left out when 0): `prefix` is the entry up to its value's 8 bytes, `zero` the whole entry for 0.
 */
function energyEntry(field: number, index: number): { prefix: Uint8Array; zero: Uint8Array } {
  const entry = (value: number): Uint8Array => {
    const w = new WireWriter(32);
    w.doubleMapEntry((field << 3) | 2, index, value);
    return Uint8Array.from(w.written());
  };
  const withValue = entry(1);
  return { prefix: withValue.subarray(0, withValue.length - 8), zero: entry(0) };
}

/** One tick's device values, and the shared part of each selection's sample, encoded once. */
class Tick {
  private readonly encoded = new Map<string, Uint8Array>();

  constructor(
    readonly values: Map<string, DeviceValues>,
    /** The tick's instant, UTC. */
    private readonly utcMs: number,
  ) {}

  shared(stream: Stream): Uint8Array {
    let bytes = this.encoded.get(stream.selectionKey);
    if (!bytes) {
      const sample = PowerSample.fromPartial({ time: new Date(this.utcMs), simulated: stream.simulated });
      for (const device of stream.devices) {
        const v = this.values.get(device.deviceId);
        if (v?.powerW !== undefined) sample[POWER_MAP[device.domain]][device.index] = v.powerW;
        if (device.domain === "gpu" && v?.temperatureC !== undefined) sample.gpuTemperatureC[device.index] = v.temperatureC;
      }
      bytes = PowerSample.encode(sample).finish();
      this.encoded.set(stream.selectionKey, bytes);
    }
    return bytes;
  }
}
