import { principalOf } from "../shared/security/principal.js";
import type { Clock } from "../shared/clock.js";
import { systemClock } from "../shared/clock.js";
import type { IntensityConfig } from "../shared/config.js";
import type { Logger } from "../shared/log.js";
import { serve, type RunningServer } from "../shared/serve.js";
import { createServerSecurity } from "../shared/security/server-security.js";
import { TtlCache } from "./cache.js";
import { Intensity } from "./intensity.js";
import { ipLocator } from "../shared/net/ip-location.js";
import { ProviderGuard, type Budget } from "./guard.js";
import { BUDGETS, buildProviders } from "./providers/registry.js";
import { validated } from "./providers/validated.js";
import { EmissionsPool } from "./emissions-pool.js";
import { intensityRegistration } from "./service.js";
import { SharedFlight, type SharedFlightOptions } from "./shared-flight.js";
import { openStore } from "./store/open.js";
import type { IntensityStore } from "./store/store.js";
import { IntensityWatch } from "./watch.js";
import type { Registry } from "prom-client";
import { instrumentRegistration } from "../shared/metrics/grpc.js";
import { logUpstreamRequests } from "../shared/metrics/http-client-log.js";
import { serveMetrics } from "../shared/metrics/http.js";
import { followProviderHealth } from "./health.js";
import { intensityMetrics } from "./metrics.js";

export interface IntensityServer {
  running: RunningServer;
  config: IntensityConfig;
  intensity: Intensity;
  cache: TtlCache;
  watch: IntensityWatch;
  store: IntensityStore;
  /** The Prometheus registry; undefined when CARBONMON_INTENSITY_METRICS_LISTEN is empty. */
  metrics?: Registry;
  /** "host:port" of GET /metrics, as bound; undefined: not served. */
  metricsAddress?: string;
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
  /** How often the service's health is re-evaluated from the providers and the cache; default 1 s. */
  healthEveryMs?: number;
}

/** Builds the provider chain, opens the store and serves CarbonIntensity on config.listen. */
export async function startIntensity(config: IntensityConfig, log: Logger, options: IntensityOptions = {}): Promise<IntensityServer> {
  const clock = options.clock ?? systemClock;
  const security = createServerSecurity(config.security, config.listen, log);
  // Every value from upstream is checked once, here, before anything stores, caches or serves it.
  const providers = buildProviders(config, clock).map((p) => validated(p, log));
  for (const p of providers) log.info({ provider: p.name, unconfigured: p.unconfiguredReason }, "provider");
  const store = await openStore(config, log);
  // Single flight and budgets go through the store, so replicas on one database act as one service.
  const cache = new TtlCache(clock, undefined, new SharedFlight(store, clock, log, options.flight), config.cacheMaxBytes);
  const budgets = options.budgets ?? BUDGETS;
  const guards = new Map(providers.map((p) => [p.name, new ProviderGuard(p.name, budgets[p.name], clock, store)]));
  let intensity: Intensity | undefined;
  const metrics = config.metricsListen !== undefined ? intensityMetrics(cache, () => intensity) : undefined;
  intensity = new Intensity({
    providers,
    store,
    cache,
    clock,
    log,
    guards,
    locateByIp: ipLocator(config.ipinfoUrl),
    ...(metrics ? { onProviderCall: (p: string, outcome: string, s: number) => metrics.providerCall(p, outcome, s) } : {}),
  });
  const stopUpstreamLog = logUpstreamRequests(
    [
      { provider: "electricitymaps", url: config.electricitymapsUrl },
      { provider: "watttime", url: config.watttimeUrl },
      { provider: "ukgrid", url: config.ukgridUrl },
    ],
    log,
  );
  const watch = new IntensityWatch(intensity, options.watchPollMs ?? 60_000, log);
  const recorder = setInterval(() => void intensity.record(), options.recordEveryMs ?? 6 * 3_600_000).unref();
  const emissionsPool = new EmissionsPool();
  const registration = intensityRegistration(intensity, watch, () => clock.nowMs(), log, emissionsPool);
  const instrumented =
    metrics || log.isLevelEnabled("debug")
      ? instrumentRegistration(registration, { metrics: metrics?.grpc, log, principalOf: (call) => principalOf(call).name })
      : registration;
  let stopHealth: (() => void) | undefined;
  let endpoint: Awaited<ReturnType<typeof serveMetrics>>;
  try {
    const running = await serve({
      listen: config.listen,
      services: [instrumented],
      log,
      security,
      onDraining: () => {
        stopHealth?.();
        clearInterval(recorder);
        watch.close();
      },
      onShutdown: async () => {
        stopUpstreamLog();
        await emissionsPool.close();
        await endpoint?.close();
        await store.close();
      },
    });
    stopHealth = followProviderHealth(intensity, cache, running.health, registration.name, options.healthEveryMs ?? 1000, log);
    endpoint = metrics && config.metricsListen !== undefined ? await serveMetrics(config.metricsListen, metrics.registry, log) : undefined;
    return {
      running,
      config,
      intensity,
      cache,
      watch,
      store,
      ...(metrics ? { metrics: metrics.registry } : {}),
      ...(endpoint ? { metricsAddress: endpoint.address } : {}),
    };
  } catch (err) {
    stopUpstreamLog();
    clearInterval(recorder);
    await emissionsPool.close();
    await store.close();
    throw err;
  }
}
