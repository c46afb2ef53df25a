/**
 * A cheap estimate of how many bytes a cached answer holds, for the cache's byte budget. It walks plain
 * data (what answers are: objects, arrays, strings, numbers, booleans, Dates) without building anything,
 * counting about what V8 spends: a header per object or array, a slot per property or element, a heap
 * number per number, and a string's characters (every string counted, though V8 shares some). It is an
 * estimate, not a measurement: within a small factor of the answer's JSON length (the test checks), which
 * is what a budget needs. Depth is bounded (answers are shallow and have no cycles).
 */

/** An object's or array's header (map, properties, elements pointers). */
const OBJECT_BYTES = 24;
/** One property or element slot (keys live once in the shared hidden class, so are not counted). */
const SLOT_BYTES = 8;
/** A string's header; its characters are counted on top (one byte each: answers are ASCII). */
const STRING_BYTES = 16;
/** A heap number (doubles that are not small integers). */
const NUMBER_BYTES = 16;
const MAX_DEPTH = 32;

export function estimateBytes(value: unknown, depth = 0): number {
  switch (typeof value) {
    case "string":
      return STRING_BYTES + value.length;
    case "number":
    case "bigint":
      return NUMBER_BYTES;
    case "boolean":
    case "undefined":
      return 8;
    case "object": {
      if (value === null) return 8;
      if (value instanceof Date) return OBJECT_BYTES + NUMBER_BYTES;
      if (depth >= MAX_DEPTH) return OBJECT_BYTES;
      let bytes = OBJECT_BYTES;
      if (Array.isArray(value)) {
        for (const item of value) bytes += SLOT_BYTES + estimateBytes(item, depth + 1);
        return bytes;
      }
      if (value instanceof Map) {
        for (const [k, v] of value) bytes += 2 * SLOT_BYTES + estimateBytes(k, depth + 1) + estimateBytes(v, depth + 1);
        return bytes;
      }
      for (const key in value) {
        if (!Object.hasOwn(value, key)) continue;
        bytes += SLOT_BYTES + estimateBytes((value as Record<string, unknown>)[key], depth + 1);
      }
      return bytes;
    }
    default:
      return 8;
  }
}
