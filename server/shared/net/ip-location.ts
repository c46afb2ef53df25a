/**
 * Zeus's get_ip_lat_long: this machine's coordinates from an ipinfo-compatible endpoint
 * (CARBONMON_IPINFO_URL, `{"loc": "42.2776,-83.7409", "city": …}`), asked once and remembered.
 */
import { AppError, Code } from "../errors.js";
import { parseLatLon } from "../config.js";
import type { Coordinates } from "../geo.js";

export function ipLocator(url: string): () => Promise<{ coordinates: Coordinates; detail: string }> {
  let known: Promise<{ coordinates: Coordinates; detail: string }> | undefined;
  const locate = async () => {
    // Imported when first asked: the HTTP client (undici, ~7 MB) is needed by agents with CARBONMON_LOCATION=auto only.
    const { getJson } = await import("./http.js");
    const body = (await getJson(url, { provider: "ipinfo", codeFromHttpStatus: () => Code.Unavailable })) as {
      loc?: unknown;
      city?: unknown;
      country?: unknown;
    };
    const coordinates = typeof body.loc === "string" ? parseLatLon(body.loc) : undefined;
    if (!coordinates) {
      throw new AppError(Code.Unavailable, `the IP-location endpoint answered without a usable "loc"`, {
        hint: `set CARBONMON_LOCATION to a zone or "lat,lon" instead of auto`,
      });
    }
    const place = [body.city, body.country].filter((x) => typeof x === "string").join(", ");
    return { coordinates, detail: `IP location${place ? `: ${place}` : ""} (${body.loc as string})` };
  };
  return () => {
    known ??= locate().catch((err: unknown) => {
      known = undefined; // ask again next time
      throw err;
    });
    return known;
  };
}
