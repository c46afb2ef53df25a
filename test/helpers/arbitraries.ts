/**
 * fast-check arbitraries shared by the property tests.
 *
 * binaryString: what `fc.string({ unit: "binary" })` generates (any code point, with fast-check's
 * "dangerous" slices such as "__proto__" and "constructor" mixed in; lone surrogates too, which that unit
 * leaves out), without its one-off cost: fast-check 4 builds a reverse map of all 1.1 million code points the
 * first time a process asks for that unit (1.3 s of CPU here, measured), to find those slices in it. Here a
 * code point comes from a mapped integer with its own inverse, which answers the same question at once.
 */
import fc from "fast-check";

const MAX_CODE_POINT = 0x10ffff;

function codePointOf(value: unknown): number {
  if (typeof value === "string" && value.length > 0 && value.length <= 2) {
    const cp = value.codePointAt(0)!;
    if (String.fromCodePoint(cp) === value) return cp;
  }
  throw new Error("not a single code point");
}

const codePoint: fc.Arbitrary<string> = fc.integer({ min: 0, max: MAX_CODE_POINT }).map((cp) => String.fromCodePoint(cp), codePointOf);

export const binaryString = (constraints: Omit<fc.StringConstraints, "unit"> = {}): fc.Arbitrary<string> =>
  fc.string({ ...constraints, unit: codePoint });
