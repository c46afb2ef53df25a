/**
 * WatchIntensity: one poller per (zone, factor, provider) however many watchers, each poll answered
 * through the cache (so at most one upstream call per period); a point is pushed when the value, its
 * period or its estimated flag changes. The first point goes out at once.
 */
import type { ServerWritableStream } from "@grpc/grpc-js";
import type { IntensityPoint, IntensityRequest as IntensityRequestMsg } from "../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { AppError, Code } from "../shared/errors.js";
import { toServiceError } from "../shared/grpc-status.js";
import type { Logger } from "../shared/log.js";
import { pointToProto, type Attempt } from "./codec.js";
import type { Point } from "./core/point.js";
import type { Intensity, IntensityRequest } from "./intensity.js";

type WatchCall = ServerWritableStream<IntensityRequestMsg, IntensityPoint>;

interface Group {
  request: IntensityRequest;
  calls: Set<WatchCall>;
  timer: NodeJS.Timeout;
  last: { point: Point; attempts: Attempt[] } | undefined;
}

const same = (a: Point, b: Point): boolean =>
  a.gPerKwh === b.gPerKwh && a.validFromMs === b.validFromMs && a.isEstimated === b.isEstimated && a.provider === b.provider;

/** Streams end with UNAVAILABLE through the one error table (grpc-status.ts), hint included. */
const SHUTTING_DOWN = new AppError(Code.Unavailable, "intensity service shutting down", {
  hint: "reconnect: another replica, or this one once restarted, serves the stream",
});

export class IntensityWatch {
  private readonly groups = new Map<string, Group>();
  private closed = false;

  constructor(
    private readonly intensity: Intensity,
    private readonly pollMs: number,
    private readonly log: Logger,
  ) {}

  get watchers(): number {
    return [...this.groups.values()].reduce((n, g) => n + g.calls.size, 0);
  }

  watch(call: WatchCall, request: () => IntensityRequest): void {
    if (this.closed) return void call.emit("error", toServiceError(SHUTTING_DOWN));
    let req: IntensityRequest;
    try {
      req = request();
    } catch (err) {
      return void call.emit("error", toServiceError(err, this.log));
    }
    this.intensity.resolve(req.location).then(
      (resolved) => this.join(call, { ...req, location: { kind: "zone", zone: resolved.zone } }),
      (err: unknown) => call.emit("error", toServiceError(err, this.log)),
    );
  }

  private join(call: WatchCall, req: IntensityRequest): void {
    if (call.cancelled || this.closed) return;
    const key = `${(req.location as { zone: string }).zone}|${req.emissionFactor}|${req.provider}|${req.allowEstimated}`;
    let group = this.groups.get(key);
    if (!group) {
      group = { request: req, calls: new Set(), timer: setInterval(() => void this.poll(key), this.pollMs), last: undefined };
      group.timer.unref();
      this.groups.set(key, group);
      void this.poll(key);
    } else if (group.last) {
      call.write(pointToProto(group.last.point, true, group.last.attempts));
    }
    group.calls.add(call);
    const leave = (): void => this.leave(key, call);
    for (const event of ["cancelled", "close", "error"]) call.once(event, leave);
  }

  private leave(key: string, call: WatchCall): void {
    const group = this.groups.get(key);
    if (!group?.calls.delete(call) || group.calls.size > 0) return;
    clearInterval(group.timer);
    this.groups.delete(key);
  }

  private async poll(key: string): Promise<void> {
    const group = this.groups.get(key);
    if (!group) return;
    try {
      const { point, attempts, cached } = await this.intensity.current(group.request);
      if (group.last && same(group.last.point, point)) return;
      group.last = { point, attempts };
      for (const call of group.calls) call.write(pointToProto(point, cached, attempts));
    } catch (err) {
      if (group.last) return this.log.warn({ err: AppError.from(err).message, key }, "intensity poll failed; watchers keep the last value");
      for (const call of group.calls) call.emit("error", toServiceError(err, this.log));
      clearInterval(group.timer);
      this.groups.delete(key);
    }
  }

  /** Ends every stream with UNAVAILABLE and stops polling. */
  close(): void {
    this.closed = true;
    for (const [key, group] of this.groups) {
      clearInterval(group.timer);
      for (const call of group.calls) call.emit("error", toServiceError(SHUTTING_DOWN));
      this.groups.delete(key);
    }
  }
}
