/**
 * Every JSON record the agent keeps on disk, with its version and its decoder. What is read back (from the
 * journal or from agent.db) is validated before it is used: a record that does not decode is set aside by
 * the caller with a log line, never applied. Decoders accept every version written so far and upgrade it:
 *   - version 0: what agents wrote before records carried a version (no "v"; journal lines one element
 *     shorter): read as version 1, which has the same fields;
 *   - version 1: objects carry "v": 1; journal lines end with the version.
 * A record from a newer agent (a higher version) is refused with a message saying so, not guessed at.
 *
 * The checks are written out here rather than with a schema library: there are five small record types,
 * and the begin and end records sit on BeginWindow's and EndWindow's path, where the writers are templates.
 */
import type { EdgeKind } from "../core/timeline.js";
import type { Anchor } from "../core/window-energy.js";
import type { Domain } from "../devices/energy-source.js";
import type { EnergyPiece } from "../carbon/pricer.js";
import type { WindowSpec } from "../windows/result.js";
import { WINDOW_KEY_PATTERN } from "../windows/result.js";
import type { SelectedDevice } from "../windows/selection.js";

export const RECORD_VERSION = 1;

/** A record that cannot be used: the reason says which field, and how. */
export class RecordError extends Error {
  override readonly name = "RecordError";
}

/** A begin edge as stored with its window (the manager's BeginEdge). */
export interface StoredEdge {
  energyJ: number;
  edgeUncertaintyJ: number;
  cumulativeUncertaintyJ: number;
  kind: EdgeKind;
  resets: number;
  segment: number;
  tMs: number;
  runId: number;
  rawJ: number | undefined;
  powerW: number | undefined;
}

/** A journaled change to the windows table: open (b), end (e), cancel (c). */
export type JournalRecord =
  | [op: "b", id: number, key: string, beginMs: number, runId: number, spec: string]
  | [op: "e", id: number, endMs: number, resultBase64: string, segments: string | null, carbonNextMs: number | null]
  | [op: "c", id: number];

// ---- field checks ----

const DOMAINS: readonly string[] = ["gpu", "cpu", "dram"] satisfies readonly Domain[];
const EDGE_KINDS: readonly string[] = ["interpolated", "extrapolated", "exact"] satisfies readonly EdgeKind[];
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const fail = (what: string, why: string): never => {
  throw new RecordError(`${what}: ${why}`);
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
function finite(v: unknown, what: string): number {
  return typeof v === "number" && Number.isFinite(v) ? v : fail(what, `expected a finite number, found ${JSON.stringify(v)?.slice(0, 40)}`);
}
function count(v: unknown, what: string): number {
  return Number.isSafeInteger(v) && (v as number) >= 0
    ? (v as number)
    : fail(what, `expected a whole number >= 0, found ${JSON.stringify(v)?.slice(0, 40)}`);
}
function text(v: unknown, what: string): string {
  return typeof v === "string" ? v : fail(what, "expected a string");
}
function optionalFinite(v: unknown, what: string): number | undefined {
  return v === undefined || v === null ? undefined : finite(v, what);
}
function key(v: unknown, what: string): string {
  const k = text(v, what);
  return WINDOW_KEY_PATTERN.test(k) ? k : fail(what, `not a window key: ${JSON.stringify(k.slice(0, 40))}`);
}
function version(o: Record<string, unknown>, what: string): void {
  const v = o.v ?? 0;
  if (v === 0 || v === RECORD_VERSION) return;
  fail(what, `version ${JSON.stringify(v)} is newer than this agent's (${RECORD_VERSION}): written by a newer carbonmon`);
}
function parse(json: string, what: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return fail(what, "not JSON");
  }
}

// ---- window spec ----

function selectedDevice(v: unknown, what: string): SelectedDevice {
  if (!isObject(v)) return fail(what, "expected an object");
  const domain = text(v.domain, `${what}.domain`);
  if (!DOMAINS.includes(domain)) fail(`${what}.domain`, `unknown domain ${JSON.stringify(domain)}`);
  const device: SelectedDevice = {
    domain: domain as Domain,
    index: count(v.index, `${what}.index`),
    deviceId: text(v.deviceId, `${what}.deviceId`),
  };
  if (v.uuid !== undefined) device.uuid = text(v.uuid, `${what}.uuid`);
  return device;
}

/** A window's spec (what it measures), as stored with it. */
export function decodeSpec(json: string): WindowSpec {
  const o = parse(json, "window spec");
  if (!isObject(o)) return fail("window spec", "expected an object");
  version(o, "window spec");
  if (!isObject(o.labels) || !Object.values(o.labels).every((l) => typeof l === "string"))
    fail("window spec.labels", "expected an object of strings");
  if (!Array.isArray(o.devices)) return fail("window spec.devices", "expected a list");
  if (!Array.isArray(o.skipped)) return fail("window spec.skipped", "expected a list");
  return {
    key: key(o.key, "window spec.key"),
    beginMs: finite(o.beginMs, "window spec.beginMs"),
    labels: Object.assign(Object.create(null) as Record<string, string>, o.labels),
    devices: o.devices.map((d, i) => selectedDevice(d, `window spec.devices[${i}]`)),
    skipped: o.skipped.map((s, i) => {
      if (!isObject(s)) return fail(`window spec.skipped[${i}]`, "expected an object");
      const domain = text(s.domain, `window spec.skipped[${i}].domain`);
      if (!DOMAINS.includes(domain)) fail(`window spec.skipped[${i}].domain`, `unknown domain ${JSON.stringify(domain)}`);
      return {
        domain: domain as Domain,
        index: count(s.index, `window spec.skipped[${i}].index`),
        reason: text(s.reason, `window spec.skipped[${i}].reason`),
      };
    }),
    skipGpus: o.skipGpus === true,
    skipCpus: o.skipCpus === true,
  };
}

/**
 * The principal that began a window, as its spec records it ("owner", written only when authentication is
 * on); "" for windows begun without authentication (and by agents before ownership).
 */
export function decodeSpecOwner(json: string): string {
  const o = parse(json, "window spec");
  if (!isObject(o)) return fail("window spec", "expected an object");
  return o.owner === undefined ? "" : text(o.owner, "window spec.owner");
}

/** The version prefix the manager's spec template writes first ("{" + this + the spec's fields). */
export const SPEC_VERSION_FIELD = `"v":${RECORD_VERSION},`;

// ---- begin edges ----

function edge(v: unknown, what: string): StoredEdge {
  if (!isObject(v)) return fail(what, "expected an object");
  const kind = text(v.kind, `${what}.kind`);
  if (!EDGE_KINDS.includes(kind)) fail(`${what}.kind`, `unknown kind ${JSON.stringify(kind)}`);
  return {
    energyJ: finite(v.energyJ, `${what}.energyJ`),
    edgeUncertaintyJ: finite(v.edgeUncertaintyJ, `${what}.edgeUncertaintyJ`),
    cumulativeUncertaintyJ: finite(v.cumulativeUncertaintyJ, `${what}.cumulativeUncertaintyJ`),
    kind: kind as EdgeKind,
    resets: count(v.resets, `${what}.resets`),
    segment: count(v.segment, `${what}.segment`),
    tMs: finite(v.tMs, `${what}.tMs`),
    runId: count(v.runId, `${what}.runId`),
    rawJ: optionalFinite(v.rawJ, `${what}.rawJ`),
    powerW: optionalFinite(v.powerW, `${what}.powerW`),
  };
}

export function encodeEdges(edges: ReadonlyMap<string, StoredEdge>): string {
  return JSON.stringify({ v: RECORD_VERSION, edges: Object.fromEntries(edges) });
}

/** A window's begin edges per device id: version 0 is the bare map, version 1 wraps it. */
export function decodeEdges(json: string): Map<string, StoredEdge> {
  const o = parse(json, "begin edges");
  if (!isObject(o)) return fail("begin edges", "expected an object");
  const map = "v" in o ? (version(o, "begin edges"), o.edges) : o;
  if (!isObject(map)) return fail("begin edges.edges", "expected an object");
  return new Map(Object.entries(map).map(([id, e]) => [id, edge(e, `begin edges[${JSON.stringify(id)}]`)]));
}

// ---- energy pieces (priced for carbon) ----

export function encodePieces(pieces: readonly EnergyPiece[]): string {
  return JSON.stringify({ v: RECORD_VERSION, pieces });
}

/** The energy pieces kept to price a window again: version 0 is the bare list, version 1 wraps it. */
export function decodePieces(json: string): EnergyPiece[] {
  const o = parse(json, "energy pieces");
  const list = Array.isArray(o) ? o : isObject(o) ? (version(o, "energy pieces"), o.pieces) : undefined;
  if (!Array.isArray(list)) return fail("energy pieces", "expected a list");
  return list.map((p, i) => {
    if (!isObject(p)) return fail(`energy pieces[${i}]`, "expected an object");
    const startMs = finite(p.startMs, `energy pieces[${i}].startMs`);
    const endMs = finite(p.endMs, `energy pieces[${i}].endMs`);
    if (endMs < startMs) fail(`energy pieces[${i}]`, "ends before it starts");
    const device = text(p.device, `energy pieces[${i}].device`);
    if (!/^(gpu|cpu|dram):\d+$/.test(device))
      fail(`energy pieces[${i}].device`, `not a device name: ${JSON.stringify(device.slice(0, 40))}`);
    return { startMs, endMs, energyJ: finite(p.energyJ, `energy pieces[${i}].energyJ`), device };
  });
}

// ---- run checkpoints ----

export function encodeAnchor(a: Anchor): string {
  return JSON.stringify({ v: RECORD_VERSION, ...a });
}

export function decodeAnchor(json: string): Anchor {
  const o = parse(json, "checkpoint");
  if (!isObject(o)) return fail("checkpoint", "expected an object");
  version(o, "checkpoint");
  const a: Anchor = { tMs: finite(o.tMs, "checkpoint.tMs"), cumJ: finite(o.cumJ, "checkpoint.cumJ") };
  const rawJ = optionalFinite(o.rawJ, "checkpoint.rawJ");
  const powerW = optionalFinite(o.powerW, "checkpoint.powerW");
  if (rawJ !== undefined) a.rawJ = rawJ;
  if (powerW !== undefined) a.powerW = powerW;
  return a;
}

// ---- journal lines ----

/**
 * A journal line as written: the record's elements, then (version 1) its version. The begin record's spec
 * is JSON inside the line, not a string. Version-0 lines have no trailing version.
 */
export function decodeJournalRecord(line: unknown): JournalRecord {
  if (!Array.isArray(line)) return fail("journal record", "expected a list");
  const [op] = line;
  const width =
    op === "b" || op === "e" ? 6 : op === "c" ? 2 : fail("journal record", `unknown operation ${JSON.stringify(op)?.slice(0, 20)}`);
  if (line.length === width + 1) {
    if (line[width] !== RECORD_VERSION)
      fail("journal record", `version ${JSON.stringify(line[width])} is not one this agent reads (${RECORD_VERSION})`);
  } else if (line.length !== width) fail("journal record", `${line.length} elements where a '${op}' record has ${width} (+ its version)`);
  const id = count(line[1], "journal record id");
  if (id === 0) fail("journal record id", "ids start at 1");
  if (op === "c") return ["c", id];
  if (op === "b") {
    const spec = typeof line[5] === "string" ? line[5] : JSON.stringify(line[5]);
    const decoded = decodeSpec(spec);
    const k = key(line[2], "journal record key");
    if (decoded.key !== k) fail("journal record", `its key ${JSON.stringify(k)} and its spec's key ${JSON.stringify(decoded.key)} differ`);
    return ["b", id, k, finite(line[3], "journal record beginMs"), count(line[4], "journal record runId"), spec];
  }
  const result = text(line[3], "journal record result");
  if (!BASE64.test(result)) fail("journal record result", "not base64");
  const segments = line[4] === null ? null : text(line[4], "journal record segments");
  if (segments !== null) decodePieces(segments);
  const next = line[5] === null ? null : finite(line[5], "journal record carbonNextMs");
  return ["e", id, finite(line[2], "journal record endMs"), result, segments, next];
}
