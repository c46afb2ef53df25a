import type { Clock } from "../shared/clock.js";
import { systemClock } from "../shared/clock.js";
import type { IntensityConfig } from "../shared/config.js";
import type { Logger } from "../shared/log.js";
import { serve, type RunningServer } from "../shared/serve.js";
import { TtlCache } from "./cache.js";
import { Intensity } from "./intensity.js";
import { ipLocator } from "../shared/net/ip-location.js";
import { ProviderGuard, type Budget } from "./guard.js";
import { BUDGETS, buildProviders } from "./providers/registry.js";
import { validated } from "./providers/validated.js";
import { intensityRegistration } from "./service.js";
import { SharedFlight, type SharedFlightOptions } from "./shared-flight.js";
import { openStore } from "./store/open.js";
import type { IntensityStore } from "./store/store.js";
import { IntensityWatch } from "./watch.js";

export interface IntensityServer {
  running: RunningServer;
  config: IntensityConfig;
  intensity: Intensity;
  cache: TtlCache;
  watch: IntensityWatch;
  store: IntensityStore;
}

export interface IntensityOptions {
  clock?: Clock;
  /** How often WatchIntensity asks for the current value (through the cache); default 60 s. */
  watchPollMs?: number;
  /** How often the last 24 h of every zone in use is recorded into the store; default 6 h. */
  recordEveryMs?: number;
  /** Request budgets per provider name instead of the published ones (tests). */
  budgets?: Record<string, Budget | undefined>;
  /** Leases and waits of the single flight across replicas. */
  flight?: SharedFlightOptions;
}

/** Builds the provider chain, opens the store and serves CarbonIntensity on config.listen. */
export async function startIntensity(config: IntensityConfig, log: Logger, options: IntensityOptions = {}): Promise<IntensityServer> {
  const clock = options.clock ?? systemClock;
  // Every value from upstream is checked once, here, before anything stores, caches or serves it.
  const providers = buildProviders(config, clock).map((p) => validated(p, log));
  for (const p of providers) log.info({ provider: p.name, unconfigured: p.unconfiguredReason }, "provider");
  const store = await openStore(config, log);
  // Single flight and budgets go through the store, so replicas on one database act as one service.
  const cache = new TtlCache(clock, undefined, new SharedFlight(store, clock, log, options.flight));
  const budgets = options.budgets ?? BUDGETS;
  const guards = new Map(providers.map((p) => [p.name, new ProviderGuard(p.name, budgets[p.name], clock, store)]));
  const intensity = new Intensity({ providers, store, cache, clock, log, guards, locateByIp: ipLocator(config.ipinfoUrl) });
  const watch = new IntensityWatch(intensity, options.watchPollMs ?? 60_000, log);
  const recorder = setInterval(() => void intensity.record(), options.recordEveryMs ?? 6 * 3_600_000).unref();
  try {
    const running = await serve({
      listen: config.listen,
      services: [intensityRegistration(intensity, watch, () => clock.nowMs(), log)],
      log,
      onDraining: () => {
        clearInterval(recorder);
        watch.close();
      },
      onShutdown: () => store.close(),
    });
    return { running, config, intensity, cache, watch, store };
  } catch (err) {
    clearInterval(recorder);
    await store.close();
    throw err;
  }
}
