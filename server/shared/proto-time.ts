/** google.protobuf.Duration as generated (bigint seconds, int nanos) to and from milliseconds. */
import type { Duration } from "../../proto/gen/google/protobuf/duration.js";

export function durationFromMs(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

export function msFromDuration(d: Duration): number {
  return Number(d.seconds) * 1000 + d.nanos / 1e6;
}
