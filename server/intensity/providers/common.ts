/**
 * What the providers that speak HTTP share: how an upstream status becomes a code and a hint, the order of
 * points, and the check on coordinates before any request is made.
 */
import type { Coordinates } from "../../shared/geo.js";
import { AppError, Code } from "../../shared/errors.js";
import type { Point } from "../core/point.js";

/** The usual 4xx statuses of a REST API (ElectricityMaps, WattTime); others fall to the HTTP client's default. */
export function codeFromHttpStatus(status: number): Code | undefined {
  return ({ 400: Code.InvalidArgument, 401: Code.Unauthenticated, 403: Code.PermissionDenied, 404: Code.NotFound } as Record<number, Code>)[
    status
  ];
}

/** A provider's hints per status (what to check), as the HTTP client asks for them. */
export function hintsByStatus(hints: Readonly<Record<number, string>>): (status: number) => string | undefined {
  return (status) => hints[status];
}

/** Points by start, one per start (the later one wins), oldest first. */
export function sortUnique(points: readonly Point[]): Point[] {
  const byStart = new Map(points.map((p) => [p.validFromMs, p]));
  return [...byStart.values()].sort((a, b) => a.validFromMs - b.validFromMs);
}

/** Latitude within ±90 and longitude within ±180, or INVALID_ARGUMENT before anything is asked upstream. */
export function checkCoordinates(c: Coordinates): void {
  if (!(Math.abs(c.lat) <= 90 && Math.abs(c.lon) <= 180))
    throw new AppError(Code.InvalidArgument, `invalid coordinates ${c.lat},${c.lon}`, { hint: "latitude -90..90, longitude -180..180" });
}
