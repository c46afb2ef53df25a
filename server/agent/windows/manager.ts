/**
 * Measurement windows: Zeus's begin_window / end_window as a service. An edge is a timestamp; its energy
 * comes from the sampler's timeline, so BeginWindow never waits for hardware. Begin edges are resolved
 * as soon as a reading after them arrives and persisted with the window, with the raw counters needed to
 * end it after an agent restart. Ended results are stored, so EndWindow is idempotent. With an intensity
 * service, a window's energy is split at the logged boundaries and priced; grams that are pending or
 * provisional are asked for again in the background and replace the stored figures.
 */
import type { UtcAnchor } from "../../shared/utc-anchor.js";
import type { Clock } from "../../shared/clock.js";
import type { AgentConfig } from "../../shared/config.js";
import { AppError, Code } from "../../shared/errors.js";
import type { Logger } from "../../shared/log.js";
import { carbonStatusOnly, type CarbonFigures } from "../carbon/outcome.js";
import type { CarbonPricer, EnergyPiece } from "../carbon/pricer.js";
import { firstRetryAtMs } from "../carbon/repricing.js";
import { energyAcrossRestarts } from "../core/window-energy.js";
import type { Sampler } from "../energy/sampler.js";
import { selectDevices, validateDeviceRequest, type DeviceRequest, type Selection } from "./selection.js";
import {
  decodeEdges,
  decodeSpec,
  decodeSpecOwner,
  encodeEdges,
  encodePieces,
  RecordError,
  SPEC_VERSION_FIELD,
  type StoredEdge,
} from "../storage/records.js";
import type { AgentStore, StoredWindow } from "../storage/store.js";
import { DiskError } from "../storage/disk-episode.js";
import { buildResult, WINDOW_KEY_PATTERN, type DeviceResult, type ResultCodec, type WindowResult, type WindowSpec } from "./result.js";
import { WindowCarbon } from "../carbon/window-carbon.js";

const MAX_LABELS = 32;
const MAX_LABEL_BYTES = 256;
const CHECKPOINT_EVERY_MS = 5000;
const PURGE_EVERY_MS = 3600_000;

/** A begin edge as persisted (storage/records.ts): the timeline edge of its run, plus what chaining across restarts needs. */
export type BeginEdge = StoredEdge;

interface OpenWindow extends WindowSpec {
  /** The principal that began it ("" without authentication): only it, or windows:admin, may touch it. */
  owner: string;
  id: number;
  runId: number;
  edges: Map<string, BeginEdge> | undefined;
}

export interface WindowDeps {
  config: Pick<AgentConfig, "maxOpenWindows" | "maxOpenWindowsPerPrincipal" | "retentionDays" | "cudaVisibleDevices" | "carbonRetryMs">;
  sampler: Sampler;
  pricer: CarbonPricer;
  store: AgentStore;
  /** Encodes results (once) for the store and the wire. */
  codec: ResultCodec;
  clock: Clock;
  /** UTC of the clock's instants, following steps of the system clock (begin_time, end_time, carbon periods). */
  utc: UtcAnchor;
  log: Logger;
  /** Told of every window ended, with its result as EndWindow answers it (metrics). */
  onEnded?: (result: WindowResult) => void;
}

export interface BeginRequest extends DeviceRequest {
  key: string;
  labels: Record<string, string>;
}

/** Who asks (api/service.ts maps the call's principal): its name, and whether it may touch any window. */
export interface Caller {
  name: string;
  admin: boolean;
}

const MAX_CACHED_SELECTIONS = 256;

/** A selection's device indices as BeginWindowResponse lists them (shared: never modified). */
export interface SelectionIndices {
  gpu: number[];
  /** The GPUs' NVML indices (they differ from gpu under CUDA_VISIBLE_DEVICES). */
  nvmlGpu: number[];
  cpu: number[];
}

interface CachedSelection extends Selection {
  json: { devices: string; skipped: string };
  indices: SelectionIndices;
}

/**
 * JSON.stringify({ v, ...spec, owner }) (storage/records.ts), with the selection's parts already serialised
 * (the same text, key for key); the owner only when there is one (authentication on).
 */
export function specJson(spec: WindowSpec, selection: CachedSelection["json"], owner = ""): string {
  return (
    `{${SPEC_VERSION_FIELD}"key":${JSON.stringify(spec.key)},"beginMs":${JSON.stringify(spec.beginMs)},"labels":${JSON.stringify(spec.labels)},` +
    `"devices":${selection.devices},"skipped":${selection.skipped},"skipGpus":${spec.skipGpus},"skipCpus":${spec.skipCpus}${owner === "" ? "" : `,"owner":${JSON.stringify(owner)}`}}`
  );
}

/** Another principal's window: refused before anything is read or changed. */
function authorise(owner: string, key: string, caller: Caller): void {
  if (caller.admin || owner === caller.name) return;
  throw new AppError(
    Code.PermissionDenied,
    `window '${key}' was begun by another principal; only it, or a token with scope windows:admin, may read, end or cancel it`,
  );
}

function validateKey(key: string): void {
  if (!WINDOW_KEY_PATTERN.test(key)) {
    throw new AppError(
      Code.InvalidArgument,
      `window key ${JSON.stringify(key.slice(0, 140))} is not 1-128 characters of [A-Za-z0-9._:/@+=-]`,
      {
        hint: "use e.g. job-1234/epoch-3",
      },
    );
  }
}

function validateLabels(labels: Record<string, string>): void {
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) throw new AppError(Code.InvalidArgument, `${entries.length} labels: at most ${MAX_LABELS} are allowed`);
  for (const [k, v] of entries) {
    if (Buffer.byteLength(k) > MAX_LABEL_BYTES || Buffer.byteLength(v) > MAX_LABEL_BYTES) {
      throw new AppError(
        Code.InvalidArgument,
        `label ${JSON.stringify(k.slice(0, 40))}: keys and values are at most ${MAX_LABEL_BYTES} bytes`,
      );
    }
  }
}

export class WindowManager {
  private readonly open = new Map<string, OpenWindow>();
  /** Open windows per owner (CARBONMON_MAX_OPEN_WINDOWS_PER_PRINCIPAL). */
  private readonly openByOwner = new Map<string, number>();
  /** Windows whose EndWindow is in progress (waiting for a reading, or being priced), by key. */
  private readonly ending = new Map<string, { window: OpenWindow; done: Promise<Uint8Array> }>();
  private readonly pending = new Set<OpenWindow>();
  private readonly selections = new Map<string, CachedSelection>();
  private selectionsVersion = -1;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unsubscribe: () => void;
  /** Carbon per window; undefined without an intensity service. */
  private readonly carbon: WindowCarbon | undefined;

  constructor(private readonly deps: WindowDeps) {
    for (const w of deps.store.openWindows()) this.restore(w);
    this.demandChanged();
    this.unsubscribe = deps.sampler.onUpdate(() => this.resolvePending());
    if (deps.pricer.enabled) this.carbon = new WindowCarbon(deps);
    this.timers.push(setInterval(() => this.checkpoint(), CHECKPOINT_EVERY_MS).unref());
    this.timers.push(setInterval(() => this.purge(), PURGE_EVERY_MS).unref());
    this.purge();
  }

  get openCount(): number {
    return this.open.size;
  }

  begin(req: BeginRequest, caller: Caller = { name: "", admin: true }): { key: string; beginMs: number; indices: SelectionIndices } {
    validateKey(req.key);
    validateLabels(req.labels);
    validateDeviceRequest(req); // before the selection cache builds its key from the lists
    if (this.open.has(req.key))
      throw new AppError(Code.AlreadyExists, `window '${req.key}' is already open`, {
        hint: "end or cancel it first, or choose another key",
      });
    if (this.open.size >= this.deps.config.maxOpenWindows) {
      throw new AppError(Code.ResourceExhausted, `${this.open.size} windows are open, the limit (CARBONMON_MAX_OPEN_WINDOWS)`, {
        hint: "end or cancel windows you no longer need",
      });
    }
    // Per principal only with authentication: without it, everyone is the one unnamed principal ("").
    const owned = this.openByOwner.get(caller.name) ?? 0;
    if (caller.name !== "" && owned >= this.deps.config.maxOpenWindowsPerPrincipal) {
      throw new AppError(
        Code.ResourceExhausted,
        `${owned} windows of this principal are open, its limit (CARBONMON_MAX_OPEN_WINDOWS_PER_PRINCIPAL)`,
        { hint: "end or cancel windows you no longer need" },
      );
    }
    const selection = this.select(req);
    const beginMs = this.deps.clock.nowMs();
    // The spec's fields first, in WindowSpec's order (restore() builds the same shape from the stored JSON).
    const window: OpenWindow = {
      key: req.key,
      beginMs,
      labels: req.labels,
      devices: selection.devices,
      skipped: selection.skipped,
      skipGpus: req.skipGpus,
      skipCpus: req.skipCpus,
      owner: caller.name,
      id: 0,
      runId: this.deps.store.runId,
      edges: undefined,
    };
    window.id = this.deps.store.insertOpen(req.key, beginMs, specJson(window, selection.json, caller.name));
    this.opened(window);
    this.pending.add(window);
    this.demandChanged();
    return { key: req.key, beginMs, indices: selection.indices };
  }

  /**
   * The devices a request selects. Orchestrators send the same few requests again and again, so selections
   * (and their JSON) are kept per request shape until a device's status changes; windows share them, which
   * also keeps 10,000 open windows small. Shared selections are never modified.
   */
  private select(req: DeviceRequest): CachedSelection {
    const { sampler, config } = this.deps;
    if (this.selectionsVersion !== sampler.statusVersion || this.selections.size >= MAX_CACHED_SELECTIONS) {
      this.selections.clear();
      this.selectionsVersion = sampler.statusVersion;
    }
    const shape = `${req.gpuIndices.join(",")}|${req.cpuIndices.join(",")}|${req.skipGpus}|${req.skipCpus}|${JSON.stringify(req.cudaVisibleDevices ?? null)}`;
    let cached = this.selections.get(shape);
    if (!cached) {
      const selection = selectDevices(sampler.devices(), req, config.cudaVisibleDevices);
      const gpus = selection.devices.filter((d) => d.domain === "gpu");
      cached = {
        ...selection,
        json: { devices: JSON.stringify(selection.devices), skipped: JSON.stringify(selection.skipped) },
        indices: {
          gpu: gpus.map((d) => d.index),
          nvmlGpu: gpus.map((d) => Number(d.deviceId.slice("gpu:".length))),
          cpu: selection.devices.filter((d) => d.domain === "cpu").map((d) => d.index),
        },
      };
      this.selections.set(shape, cached);
    }
    return cached;
  }

  private opened(window: OpenWindow): void {
    this.open.set(window.key, window);
    this.openByOwner.set(window.owner, (this.openByOwner.get(window.owner) ?? 0) + 1);
  }

  /** Takes an open window out of the map (and its owner's count), if it is the one open under its key. */
  private closed(window: OpenWindow): void {
    if (this.open.get(window.key) !== window) return;
    this.open.delete(window.key);
    const n = (this.openByOwner.get(window.owner) ?? 1) - 1;
    if (n > 0) this.openByOwner.set(window.owner, n);
    else this.openByOwner.delete(window.owner);
  }

  /** Ends a window, or returns the stored result of the last one ended under this key: encoded, as stored. */
  end(key: string, waitForCounterUpdate: boolean, caller: Caller = { name: "", admin: true }): Promise<Uint8Array> {
    try {
      validateKey(key);
    } catch (err) {
      return Promise.reject(err);
    }
    const window = this.open.get(key);
    const inFlight = this.ending.get(key);
    try {
      if (window) authorise(window.owner, key, caller);
      else if (inFlight) authorise(inFlight.window.owner, key, caller);
    } catch (err) {
      return Promise.reject(err);
    }
    // The same window already being ended, or (no new one open under the key) the last one still being priced.
    if (inFlight && (window === undefined || inFlight.window === window)) return inFlight.done;
    if (!window) {
      try {
        return Promise.resolve(this.stored(key, caller));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const endMs = this.deps.clock.nowMs();
    // Nothing to wait for (no counter update, no pricing): ended before this returns, so no other call can
    // find it in progress. Most EndWindows take this path.
    if (!waitForCounterUpdate && !this.carbon) {
      try {
        const { result, bytes } = this.complete(window, endMs);
        this.deps.onEnded?.(result);
        return Promise.resolve(bytes);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const entry = { window, done: this.finish(window, endMs, waitForCounterUpdate) };
    this.ending.set(key, entry);
    void entry.done.finally(() => this.ending.get(key) === entry && this.ending.delete(key)).catch(() => undefined);
    return entry.done;
  }

  private async finish(window: OpenWindow, endMs: number, wait: boolean): Promise<Uint8Array> {
    if (wait)
      await this.deps.sampler.waitForReadingsAfter(
        endMs,
        window.devices.map((d) => d.deviceId),
        1000,
      );
    const { result, bytes, pieces } = this.complete(window, endMs);
    if (!pieces) {
      this.deps.onEnded?.(result);
      return bytes;
    }
    const priced = await this.carbon!.price(window.id, result, pieces);
    this.deps.onEnded?.(priced.result);
    return priced.bytes;
  }

  /**
   * Measures a window up to endMs, stores the result and closes the window. Stored before pricing: the
   * energy is safe whatever the intensity service does, and a crash while pricing leaves the window due for
   * the background loop.
   */
  private complete(window: OpenWindow, endMs: number): { result: WindowResult; bytes: Uint8Array; pieces: EnergyPiece[] | undefined } {
    const { store, clock, config, codec } = this.deps;
    const { result, pieces } = this.measure(window, endMs, true);
    const bytes = codec.encode(result);
    store.end(
      window.id,
      endMs,
      bytes,
      pieces ? encodePieces(pieces) : null,
      firstRetryAtMs(clock.nowMs(), config.carbonRetryMs, pieces !== undefined),
    );
    this.closed(window);
    this.pending.delete(window);
    this.demandChanged();
    return { result, bytes, pieces };
  }

  /** Asks again for pending or provisional grams now (the background loop does it on its own). */
  refreshCarbon(): Promise<void> {
    return this.carbon?.refresh() ?? Promise.resolve();
  }

  /** An open window's running totals, or the stored result of the last one ended under this key: encoded. */
  get(key: string, caller: Caller = { name: "", admin: true }): Uint8Array {
    validateKey(key);
    const window = this.open.get(key);
    if (!window) return this.stored(key, caller);
    authorise(window.owner, key, caller);
    return this.deps.codec.encode(this.measure(window, this.deps.clock.nowMs(), false).result);
  }

  cancel(key: string, caller: Caller = { name: "", admin: true }): { key: string; beginMs: number } {
    validateKey(key);
    const window = this.open.get(key);
    if (!window) throw new AppError(Code.NotFound, `no open window '${key}'`, { hint: "ListWindows shows the open windows" });
    authorise(window.owner, key, caller);
    if (this.ending.get(key)?.window === window) {
      throw new AppError(Code.FailedPrecondition, `window '${key}' is being ended (EndWindow is waiting for a counter update)`, {
        hint: "its result is stored in a moment: GetWindow returns it",
      });
    }
    this.deps.store.cancel(window.id);
    this.closed(window);
    this.pending.delete(window);
    this.demandChanged();
    return { key, beginMs: window.beginMs };
  }

  /** Open (and recently ended) windows: the caller's own, or every one for windows:admin. */
  list(includeEnded: boolean, caller: Caller = { name: "", admin: true }): Array<{ spec: WindowSpec; endMs?: number }> {
    const open = [...this.open.values()].filter((w) => caller.admin || w.owner === caller.name).map((w) => ({ spec: w as WindowSpec }));
    if (!includeEnded) return open;
    const ended = this.deps.store.recentlyEnded(1000).flatMap((w) => {
      try {
        if (!caller.admin && decodeSpecOwner(w.spec) !== caller.name) return [];
        return [{ spec: decodeSpec(w.spec), endMs: w.endMs! }];
      } catch (err) {
        this.deps.log.error(
          { window: w.id, err: (err as Error).message },
          "an ended window's stored spec does not decode; left out of ListWindows",
        );
        return [];
      }
    });
    return [...open, ...ended];
  }

  /** Writes a last checkpoint and stops the timers. */
  close(): void {
    this.unsubscribe();
    this.carbon?.close();
    for (const t of this.timers) clearInterval(t);
    this.resolvePending();
    this.checkpoint();
  }

  /** Open windows need full-rate sampling (their edges are interpolated between readings). */
  private demandChanged(): void {
    this.deps.sampler.setDemand("windows", this.open.size > 0);
  }

  private stored(key: string, caller: Caller): Uint8Array {
    validateKey(key);
    const w = this.deps.store.latestEnded(key);
    if (!w?.result)
      throw new AppError(Code.NotFound, `no window '${key}' is open or stored`, {
        hint: `ended windows are kept for ${this.deps.config.retentionDays} days`,
      });
    if (!caller.admin) authorise(decodeSpecOwner(w.spec), key, caller);
    // Results stored by agents before the journal are JSON: re-encoded once read.
    return typeof w.result === "string" ? this.deps.codec.encode(this.deps.codec.decode(w.result)) : w.result;
  }

  /** An open window from the store; one whose records do not decode is set aside (never served half-read). */
  private restore(w: StoredWindow): void {
    let spec: WindowSpec;
    let owner: string;
    let edges: Map<string, BeginEdge> | undefined;
    try {
      spec = decodeSpec(w.spec);
      owner = decodeSpecOwner(w.spec);
      edges = w.edges ? decodeEdges(w.edges) : undefined;
      if (spec.key !== w.key)
        throw new RecordError(`the window's key ${JSON.stringify(w.key)} and its spec's key ${JSON.stringify(spec.key)} differ`);
    } catch (err) {
      if (!(err instanceof RecordError)) throw err;
      this.deps.store.setAside(w.id, err.message);
      return;
    }
    const window: OpenWindow = { ...spec, owner, id: w.id, runId: w.runId, edges };
    this.opened(window);
    if (!edges && w.runId === this.deps.store.runId) this.pending.add(window);
  }

  /** Resolves begin edges that now have a reading after them; persists them in one transaction. */
  private resolvePending(): void {
    if (this.pending.size === 0) return;
    const resolved: Array<{ window: OpenWindow; edges: Map<string, BeginEdge> }> = [];
    for (const window of this.pending) {
      const edges = this.beginEdges(window, false);
      if (edges) resolved.push({ window, edges });
    }
    if (resolved.length === 0) return;
    try {
      this.deps.store.setEdges(resolved.map((r) => ({ id: r.window.id, edges: encodeEdges(r.edges) })));
    } catch (err) {
      // Still pending: stored with a later reading (the timeline keeps the begin for half an hour). A disk
      // failure is already counted by the store's disk episode (logged once, not at every reading).
      if (!(err instanceof DiskError))
        this.deps.log.error({ err }, "storing windows' begin edges failed; trying again with the next reading");
      return;
    }
    for (const { window, edges } of resolved) {
      window.edges = edges;
      this.pending.delete(window);
    }
  }

  /**
   * Every device's edge at the window's begin; undefined while some lacks a reading after it (unless
   * forced). Anchors (the raw counter, for chaining across restarts) only for edges that are stored.
   */
  private beginEdges(window: OpenWindow, force: boolean, withAnchors = true): Map<string, BeginEdge> | undefined {
    const { sampler, store } = this.deps;
    const edges = new Map<string, BeginEdge>();
    for (const d of window.devices) {
      if (sampler.device(d.deviceId)?.status !== "ok") continue; // a lost device must not hold the others' edges back
      const edge = sampler.energyAt(d.deviceId, window.beginMs);
      if (!edge) {
        // Its readings all follow the begin (the window was begun before its first one): none will ever
        // bracket it. That device is reported missing; the others' edges are still resolved and stored.
        if (force || sampler.hasReading(d.deviceId)) continue;
        return undefined; // no reading at all yet: wait for one
      }
      if (edge.kind === "extrapolated" && !force) return undefined;
      const anchor = withAnchors ? sampler.anchorAt(d.deviceId, window.beginMs) : undefined;
      // One object shape for every edge (no conditional spreads): 10,000 open windows stay small.
      edges.set(d.deviceId, {
        energyJ: edge.energyJ,
        edgeUncertaintyJ: edge.edgeUncertaintyJ,
        cumulativeUncertaintyJ: edge.cumulativeUncertaintyJ,
        kind: edge.kind,
        resets: edge.resets,
        segment: edge.segment,
        tMs: window.beginMs,
        runId: store.runId,
        rawJ: anchor?.rawJ,
        powerW: anchor?.powerW,
      });
    }
    return edges;
  }

  /** The window's result up to endMs; for an ended window with carbon enabled, its energy pieces too. */
  private measure(window: OpenWindow, endMs: number, ended: boolean): { result: WindowResult; pieces: EnergyPiece[] | undefined } {
    const { sampler } = this.deps;
    const carbon = ended ? this.carbon : undefined;
    // Begin edges not resolved yet (the window is younger than a counter update) are taken from this run's
    // timeline as they are: as BeginEdges only where carbon pieces need them.
    const edges = window.edges ?? (carbon ? this.beginEdges(window, true, false) : undefined);
    const results = new Array<DeviceResult>(window.devices.length);
    for (let i = 0; i < results.length; i++) {
      const id = window.devices[i]!.deviceId;
      results[i] = window.edges
        ? this.deviceResult(id, window.edges.get(id), endMs)
        : this.deviceResult(id, undefined, endMs, window.beginMs);
    }
    const result = buildResult({
      spec: window,
      endMs,
      ended,
      results,
      sampler,
      carbon: this.carbonStatus(ended),
      utcStepMs: this.deps.utc.stepMs,
    });
    if (!carbon) return { result, pieces: undefined };
    const pieces = window.devices.flatMap((d, i) => {
      const r = results[i]!;
      const begin = edges?.get(d.deviceId);
      return r.missing !== undefined || !begin ? [] : carbon.pieces(d, begin, endMs, r.energyJ);
    });
    return { result, pieces };
  }

  private carbonStatus(ended: boolean): CarbonFigures {
    if (!this.carbon) return carbonStatusOnly("disabled", this.deps.pricer.disabledReason);
    return carbonStatusOnly(
      "pending",
      ended ? "the intensity service has not priced this window yet" : "grams are computed when the window ends",
    );
  }

  /** A device's figures from its stored begin edge, or (freshBeginMs: not resolved yet) from this run's timeline. */
  private deviceResult(deviceId: string, stored: BeginEdge | undefined, endMs: number, freshBeginMs?: number): DeviceResult {
    const { sampler, store } = this.deps;
    const device = sampler.device(deviceId);
    if (device?.status !== "ok") return { missing: device?.statusReason ?? "the device is no longer present" };
    const begin = freshBeginMs === undefined ? stored : sampler.energyAt(deviceId, freshBeginMs);
    if (!begin)
      return {
        missing:
          "the window's start was not measured on this device: the agent stopped before a reading followed it, or the device was unavailable or not read yet then",
      };
    try {
      if (!stored || stored.runId === store.runId) return sampler.energySince(deviceId, begin, endMs);
      return this.acrossRestart(deviceId, stored, endMs);
    } catch (err) {
      return { missing: AppError.from(err).message };
    }
  }

  private acrossRestart(deviceId: string, begin: BeginEdge, endMs: number): DeviceResult {
    const { sampler, store } = this.deps;
    const current = sampler.span(deviceId);
    const end = sampler.anchorAt(deviceId, endMs);
    const endEdge = sampler.energyAt(deviceId, endMs);
    if (!current || !end || !endEdge) throw new AppError(Code.FailedPrecondition, `${deviceId} has no readings in this run yet`);
    const device = sampler.device(deviceId)!;
    return energyAcrossRestarts({
      begin,
      earlierRuns: store.runsSince(deviceId, begin.runId).filter((r) => r.runId !== store.runId),
      current: { runId: store.runId, ...current },
      end,
      endEdge,
      hasEnergyCounter: device.hasEnergyCounter,
      ...(device.counterRangeJ !== undefined ? { counterRangeJ: device.counterRangeJ } : {}),
    });
  }

  private checkpoint(): void {
    const spans = this.deps.sampler.devices().flatMap((d) => {
      const span = this.deps.sampler.span(d.id);
      return span ? [{ deviceId: d.id, ...span }] : [];
    });
    try {
      this.deps.store.checkpoint(spans);
    } catch (err) {
      if (!(err instanceof DiskError)) this.deps.log.error({ err }, "checkpoint failed"); // disk failures: logged once per episode
    }
  }

  private purge(): void {
    const now = this.deps.clock.nowMs();
    try {
      const n = this.deps.store.purgeEndedBefore(now - this.deps.config.retentionDays * 86_400_000);
      if (n > 0) this.deps.log.info({ purged: n }, "ended windows past retention removed");
    } catch (err) {
      if (!(err instanceof DiskError))
        this.deps.log.error({ err }, "removing ended windows past retention failed; trying again in an hour");
    }
    let oldestOpenMs = now;
    for (const w of this.open.values()) oldestOpenMs = Math.min(oldestOpenMs, w.beginMs);
    this.carbon?.purgeBefore(oldestOpenMs);
  }
}
