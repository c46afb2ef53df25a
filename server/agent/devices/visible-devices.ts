/**
 * CUDA_VISIBLE_DEVICES as CUDA reads it: a comma-separated list of GPU ordinals, GPU UUIDs (or unique UUID
 * prefixes) and MIG ids. A framework's GPU index i is the i-th entry, so mapping it to an NVML index needs
 * the list the framework saw. NVML indices follow PCI bus order, which is CUDA's only with
 * CUDA_DEVICE_ORDER=PCI_BUS_ID; UUIDs are the unambiguous way to name GPUs.
 */
import { AppError, Code } from "../../shared/errors.js";

export type VisibleEntry =
  | { kind: "index"; index: number; text: string }
  /** A full UUID or a prefix of one, "GPU-" included. */
  | { kind: "uuid"; uuidPrefix: string; text: string }
  | { kind: "mig"; text: string };

const LIST_HINT = "list the GPUs with `nvidia-smi -L`";

/**
 * undefined: every GPU is visible. "": none is. CUDA stops at the first entry it cannot use; a negative
 * ordinal ("-1", the usual way to hide every GPU) is such an entry and ends the list quietly. An entry that
 * is neither an integer nor a GPU-/MIG- id is a mistake rather than an idiom, so it is reported.
 */
export function parseVisibleDevices(value: string | undefined): VisibleEntry[] | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === "") return [];
  const entries: VisibleEntry[] = [];
  for (const [position, raw] of value.split(",").entries()) {
    const text = raw.trim();
    if (/^-\d+$/.test(text)) break;
    if (/^\d+$/.test(text)) entries.push({ kind: "index", index: Number(text), text });
    else if (/^GPU-[0-9a-f][0-9a-f-]*$/i.test(text)) entries.push({ kind: "uuid", uuidPrefix: text.toLowerCase(), text });
    else if (/^MIG-.+/.test(text)) entries.push({ kind: "mig", text });
    else throw invalidEntry(text, position, entries.length);
  }
  return entries;
}

function invalidEntry(text: string, position: number, validBefore: number): AppError {
  const what = text === "" ? "is empty" : "is neither a GPU index, a GPU- UUID nor a MIG- id";
  return new AppError(
    Code.InvalidArgument,
    `CUDA_VISIBLE_DEVICES entry ${position + 1} (${JSON.stringify(text)}) ${what}; ` +
      `CUDA ignores it and every entry after it, so only ${validBefore} GPU(s) would be visible`,
    { hint: `use GPU indices or GPU- UUIDs separated by commas; ${LIST_HINT}` },
  );
}

/** The NVML indices of the visible GPUs, in framework order (framework index i = entry i). */
export function resolveVisibleDevices(value: string | undefined, gpus: readonly { index: number; uuid: string }[]): number[] {
  const entries = parseVisibleDevices(value);
  if (entries === undefined) return gpus.map((gpu) => gpu.index).sort((a, b) => a - b);
  const seenBy = new Map<number, string>();
  return entries.map((entry) => {
    const nvmlIndex = resolveEntry(entry, gpus);
    const earlier = seenBy.get(nvmlIndex);
    if (earlier !== undefined) {
      throw new AppError(
        Code.InvalidArgument,
        `CUDA_VISIBLE_DEVICES names GPU ${nvmlIndex} twice (${JSON.stringify(earlier)} and ${JSON.stringify(entry.text)})`,
        { hint: "list each GPU once" },
      );
    }
    seenBy.set(nvmlIndex, entry.text);
    return nvmlIndex;
  });
}

function resolveEntry(entry: VisibleEntry, gpus: readonly { index: number; uuid: string }[]): number {
  switch (entry.kind) {
    case "mig":
      throw new AppError(
        Code.InvalidArgument,
        `CUDA_VISIBLE_DEVICES entry ${JSON.stringify(entry.text)} is a MIG instance: ` +
          "MIG instances report no power: measure the parent GPU by its GPU- UUID or index",
        { hint: `${LIST_HINT} shows each MIG device under its parent GPU` },
      );
    case "index": {
      if (gpus.some((gpu) => gpu.index === entry.index)) return entry.index;
      throw new AppError(
        Code.InvalidArgument,
        `CUDA_VISIBLE_DEVICES entry ${JSON.stringify(entry.text)} is out of range: this host has ${gpus.length} GPU(s)` +
          (gpus.length > 0 ? ` (indices ${describeIndices(gpus)})` : ""),
        { hint: LIST_HINT },
      );
    }
    case "uuid": {
      const matches = gpus.filter((gpu) => gpu.uuid.toLowerCase().startsWith(entry.uuidPrefix));
      const only = matches[0];
      if (matches.length === 1 && only) return only.index;
      const message =
        matches.length === 0
          ? `CUDA_VISIBLE_DEVICES entry ${JSON.stringify(entry.text)} matches no GPU on this host`
          : `CUDA_VISIBLE_DEVICES entry ${JSON.stringify(entry.text)} is ambiguous: it is a prefix of ` +
            matches.map((gpu) => `${gpu.uuid} (GPU ${gpu.index})`).join(" and ");
      throw new AppError(Code.InvalidArgument, message, { hint: `give a longer UUID; ${LIST_HINT}` });
    }
  }
}

function describeIndices(gpus: readonly { index: number }[]): string {
  return gpus
    .map((gpu) => gpu.index)
    .sort((a, b) => a - b)
    .join(", ");
}

/** Maps the GPU indices a framework uses (positions in its visible list) to NVML indices. */
export function mapFrameworkIndices(frameworkIndices: readonly number[], visible: number[]): number[] {
  return frameworkIndices.map((frameworkIndex) => {
    const nvmlIndex = Number.isInteger(frameworkIndex) && frameworkIndex >= 0 ? visible[frameworkIndex] : undefined;
    if (nvmlIndex !== undefined) return nvmlIndex;
    const range = visible.length > 0 ? `; valid indices are 0-${visible.length - 1}` : "";
    throw new AppError(Code.InvalidArgument, `GPU index ${frameworkIndex} is not visible: ${visible.length} GPU(s) are visible${range}`, {
      hint: "framework GPU indices count the entries of the caller's CUDA_VISIBLE_DEVICES, from 0",
    });
  });
}
