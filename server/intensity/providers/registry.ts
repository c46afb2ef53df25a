/** The providers of the fallback chain, built from the configuration in CARBONMON_PROVIDERS order. */
import type { Clock } from "../../shared/clock.js";
import type { IntensityConfig } from "../../shared/config.js";
import { ElectricityMapsProvider } from "./electricitymaps.js";
import { OfflineProvider } from "./offline.js";
import type { Provider } from "./provider.js";
import { parseConstants, StaticProvider } from "./static.js";
import { UkGridProvider } from "./uk-grid.js";

const BUILD: Record<string, (config: IntensityConfig, clock: Clock) => Provider> = {
  electricitymaps: (c, clock) => new ElectricityMapsProvider({ baseUrl: c.electricitymapsUrl, apiToken: c.electricitymapsApiToken, clock }),
  ukgrid: (c, clock) => new UkGridProvider({ baseUrl: c.ukgridUrl, clock }),
  static: (c, clock) => new StaticProvider(parseConstants(c.intensityConstants ?? ""), { clock }),
  offline: (_c, clock) => new OfflineProvider({ clock }),
};

export function buildProviders(config: IntensityConfig, clock: Clock): Provider[] {
  return config.providers.map((name) => BUILD[name]!(config, clock));
}
