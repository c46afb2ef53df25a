/** The providers of the fallback chain, built from the configuration in CARBONMON_PROVIDERS order. */
import type { Clock } from "../../shared/clock.js";
import type { IntensityConfig } from "../../shared/config.js";
import type { Budget } from "../guard.js";
import { ElectricityMapsProvider } from "./electricitymaps.js";
import { OfflineProvider } from "./offline.js";
import type { Provider } from "./provider.js";
import { parseConstants, StaticProvider } from "./static.js";
import { UkGridProvider } from "./uk-grid.js";
import { WattTimeProvider } from "./watttime.js";

const BUILD: Record<string, (config: IntensityConfig, clock: Clock) => Provider> = {
  electricitymaps: (c, clock) =>
    new ElectricityMapsProvider({
      baseUrl: c.electricitymapsUrl,
      apiToken: c.electricitymapsApiToken,
      granularity: c.electricitymapsGranularity,
      clock,
    }),
  watttime: (c, clock) =>
    new WattTimeProvider({ baseUrl: c.watttimeUrl, username: c.watttimeUsername, password: c.watttimePassword, clock }),
  ukgrid: (c, clock) => new UkGridProvider({ baseUrl: c.ukgridUrl, clock }),
  static: (c, clock) => new StaticProvider(parseConstants(c.intensityConstants ?? ""), { clock }),
  offline: (_c, clock) => new OfflineProvider({ clock }),
};

/**
 * Request budgets from the providers' published limits, with headroom for the calls one answer can take
 * (chunks, retries). WattTime: 3,000 requests per 5 minutes. ElectricityMaps and the UK grid publish no
 * hard numbers for their APIs: 100 and 60 calls a minute keep a fleet polite. Local providers: none.
 */
export const BUDGETS: Record<string, Budget | undefined> = {
  electricitymaps: { capacity: 100, windowMs: 60_000 },
  watttime: { capacity: 2_500, windowMs: 300_000 },
  ukgrid: { capacity: 60, windowMs: 60_000 },
};

export function buildProviders(config: IntensityConfig, clock: Clock): Provider[] {
  return config.providers.map((name) => BUILD[name]!(config, clock));
}
