/**
 * WatchPower: streams of PowerSample read from the sampler's timelines, never from the hardware. Streams
 * with the same period form a group with one timer; each tick reads every device the group needs once and
 * writes each stream its subset. A stream whose reader is slow is not written to until it drains (the
 * ticks it misses are counted, never queued), then it gets the latest sample: memory stays bounded.
 * Open streams hold the sampler at full rate (setDemand "power"); with none, it may sample at its idle rate.
 */
import type { ServerWritableStream } from "@grpc/grpc-js";
import type { PowerSample, WatchPowerRequest } from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import type { AgentConfig } from "../../shared/config.js";
import { AppError, Code } from "../../shared/errors.js";
import { toServiceError } from "../../shared/grpc-status.js";
import type { Logger } from "../../shared/log.js";
import { msFromDuration } from "../../shared/proto-time.js";
import type { Domain } from "../devices/energy-source.js";
import type { Sampler } from "../energy/sampler.js";
import { selectDevices, type SelectedDevice } from "../windows/selection.js";

export interface PowerHubOptions {
  config: Pick<AgentConfig, "samplingPeriodMs" | "cudaVisibleDevices">;
  log: Logger;
}

type PowerCall = ServerWritableStream<WatchPowerRequest, PowerSample>;
type SampleMap = "gpuPowerW" | "cpuPowerW" | "dramPowerW" | "gpuEnergyJ" | "cpuEnergyJ" | "dramEnergyJ";

const DEFAULT_PERIOD_MS = 1000;
const MAX_PERIOD_MS = 3_600_000;
const POWER_MAP: Record<Domain, SampleMap> = { gpu: "gpuPowerW", cpu: "cpuPowerW", dram: "dramPowerW" };
const ENERGY_MAP: Record<Domain, SampleMap> = { gpu: "gpuEnergyJ", cpu: "cpuEnergyJ", dram: "dramEnergyJ" };
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
  group: Group;
  devices: SelectedDevice[];
  simulated: boolean;
  /** When the stream began, agent clock ms: its energies count from there. */
  beginMs: number;
  /**
   * Cumulative energy per device id at beginMs (or at its first reading after that, when it had none
   * before). Interpolated on the timeline once a reading after beginMs exists; until then extrapolated from
   * the last reading, which may be an idle period old, so it is resolved again (see energySinceStartJ).
   */
  baselineJ: Map<string, number>;
  /** Devices whose baseline is still extrapolated. */
  provisional: Set<string>;
  lastSentMs: number;
  /** Samples sent so far: the next sample's sequence. */
  sent: number;
  /** Ticks not sent since the previous sample. */
  skipped: number;
  /** write() returned false: wait for 'drain'. */
  blocked: boolean;
}

interface Group {
  periodMs: number;
  timer: NodeJS.Timeout;
  streams: Set<Stream>;
}

export class PowerHub {
  private readonly groups = new Map<number, Group>();
  private closed = false;

  constructor(
    readonly sampler: Sampler,
    readonly options: PowerHubOptions,
  ) {}

  /** Number of open WatchPower streams. */
  get streams(): number {
    let count = 0;
    for (const group of this.groups.values()) count += group.streams.size;
    return count;
  }

  /** Samples written but not yet taken by the transport, all streams together (bounded per stream). */
  get bufferedSamples(): number {
    let count = 0;
    for (const group of this.groups.values()) for (const s of group.streams) count += s.call.writableLength;
    return count;
  }

  /** Serves one WatchPower call until the client cancels or the hub closes. */
  watch(call: PowerCall): void {
    if (call.cancelled) return;
    try {
      if (this.closed) throw new AppError(Code.Unavailable, "agent shutting down");
      const periodMs = this.periodMs(call.request);
      const { devices } = selectDevices(this.sampler.devices(), call.request, this.options.config.cudaVisibleDevices);
      this.open(call, periodMs, devices);
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
      throw new AppError(Code.InvalidArgument, `period ${periodMs} ms is below the sampling period ${floorMs} ms: the hardware updates no faster`, {
        hint: `ask for a period of at least ${floorMs} ms, or leave it unset for 1 s`,
      });
    }
    if (periodMs > MAX_PERIOD_MS) throw new AppError(Code.InvalidArgument, `period ${periodMs} ms is above the maximum of 1 hour`);
    return periodMs;
  }

  private open(call: PowerCall, periodMs: number, devices: SelectedDevice[]): void {
    const nowMs = this.sampler.now();
    const stream: Stream = {
      call,
      group: this.joinGroup(periodMs),
      devices,
      simulated: devices.some((d) => this.sampler.snapshot(d.deviceId)?.device.simulated === true),
      beginMs: nowMs,
      baselineJ: new Map(),
      provisional: new Set(),
      lastSentMs: nowMs,
      sent: 0,
      skipped: 0,
      blocked: false,
    };
    stream.group.streams.add(stream);
    for (const event of STREAM_END_EVENTS) call.once(event, () => this.leave(stream));
    // Full rate from now: the sources read at once, so the next tick's values are fresh. The first sample
    // does not wait for that read (it comes from the timeline as it is).
    this.demandChanged();
    this.send(stream, this.readDevices([stream], nowMs), nowMs);
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
    if (group.streams.size === 0) {
      clearInterval(group.timer);
      if (this.groups.get(group.periodMs) === group) this.groups.delete(group.periodMs);
    }
    this.demandChanged();
  }

  private tick(group: Group): void {
    const nowMs = this.sampler.now();
    const values = this.readDevices(group.streams, nowMs);
    for (const stream of group.streams) {
      // A stream that joined less than half a period ago already has a fresh sample.
      if (nowMs - stream.lastSentMs < group.periodMs / 2) continue;
      if (stream.blocked) stream.skipped++;
      else this.send(stream, values, nowMs);
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

  private send(stream: Stream, values: Map<string, DeviceValues>, nowMs: number): void {
    const sample = this.sample(stream, values, nowMs);
    stream.sent++;
    stream.skipped = 0;
    stream.lastSentMs = nowMs;
    if (stream.call.write(sample)) return;
    stream.blocked = true;
    stream.call.once("drain", () => (stream.blocked = false));
  }

  private sample(stream: Stream, values: Map<string, DeviceValues>, nowMs: number): PowerSample {
    const sample: PowerSample = {
      time: new Date(nowMs),
      sequence: BigInt(stream.sent),
      skipped: BigInt(stream.skipped),
      simulated: stream.simulated,
      gpuPowerW: {}, cpuPowerW: {}, dramPowerW: {}, gpuEnergyJ: {}, cpuEnergyJ: {}, dramEnergyJ: {}, gpuTemperatureC: {},
    };
    for (const device of stream.devices) {
      const v = values.get(device.deviceId);
      if (v?.powerW !== undefined) sample[POWER_MAP[device.domain]][device.index] = v.powerW;
      const energyJ = this.energySinceStartJ(stream, device.deviceId, v?.energyJ);
      if (energyJ !== undefined) sample[ENERGY_MAP[device.domain]][device.index] = energyJ;
      if (device.domain === "gpu" && v?.temperatureC !== undefined) sample.gpuTemperatureC[device.index] = v.temperatureC;
    }
    return sample;
  }

  private energySinceStartJ(stream: Stream, deviceId: string, cumulativeJ: number | undefined): number | undefined {
    if (cumulativeJ === undefined) return undefined;
    let baselineJ = stream.baselineJ.get(deviceId);
    if (baselineJ === undefined || stream.provisional.has(deviceId)) {
      const edge = this.sampler.energyAt(deviceId, stream.beginMs);
      if (edge?.kind === "extrapolated") stream.provisional.add(deviceId);
      else stream.provisional.delete(deviceId);
      baselineJ = edge?.energyJ ?? baselineJ ?? cumulativeJ;
      stream.baselineJ.set(deviceId, baselineJ);
    }
    return Math.max(0, cumulativeJ - baselineJ);
  }
}
