import type { Clock } from "../shared/clock.js";
import { systemClock } from "../shared/clock.js";
import type { IntensityConfig } from "../shared/config.js";
import type { Logger } from "../shared/log.js";
import { serve, type RunningServer } from "../shared/serve.js";
import { TtlCache } from "./cache.js";
import { Intensity } from "./intensity.js";
import { ipLocator } from "./ip-location.js";
import { ProviderGuard } from "./guard.js";
import { BUDGETS, buildProviders } from "./providers/registry.js";
import { intensityRegistration } from "./service.js";
import { IntensityStore } from "./store.js";

export interface IntensityServer {
  running: RunningServer;
  config: IntensityConfig;
  intensity: Intensity;
  cache: TtlCache;
}

/** Builds the provider chain, opens the store and serves CarbonIntensity on config.listen. */
export async function startIntensity(config: IntensityConfig, log: Logger, clock: Clock = systemClock): Promise<IntensityServer> {
  const providers = buildProviders(config, clock);
  for (const p of providers) log.info({ provider: p.name, unconfigured: p.unconfiguredReason }, "provider");
  const store = new IntensityStore(config.dataDir);
  const cache = new TtlCache(clock);
  const guards = new Map(providers.map((p) => [p.name, new ProviderGuard(p.name, BUDGETS[p.name], clock)]));
  const intensity = new Intensity({ providers, store, cache, clock, log, guards, locateByIp: ipLocator(config.ipinfoUrl) });
  try {
    const running = await serve({
      listen: config.listen,
      services: [intensityRegistration(intensity, () => clock.nowMs(), log)],
      log,
      onShutdown: () => store.close(),
    });
    return { running, config, intensity, cache };
  } catch (err) {
    store.close();
    throw err;
  }
}
