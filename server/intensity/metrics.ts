/**
 * The intensity service's Prometheus registry: the latest intensity of every zone in use, each
 * provider's calls, latency, breaker and budget, and the cache's lookups, all read at scrape time from
 * the objects that already keep them (no upstream call), plus the gRPC server metrics.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { registerProcessMetrics } from "../shared/metrics/defaults.js";
import { grpcMetrics, type GrpcMetrics } from "../shared/metrics/grpc.js";
import type { TtlCache } from "./cache.js";
import type { Intensity } from "./intensity.js";

export interface IntensityMetrics {
  registry: Registry;
  grpc: GrpcMetrics;
  /** Intensity's onProviderCall. */
  providerCall(provider: string, outcome: string, seconds: number): void;
}

/** Seconds: a local provider (µs) to an upstream with retries and backoff (10 s timeouts). */
const PROVIDER_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function intensityMetrics(cache: TtlCache, intensity: () => Intensity | undefined): IntensityMetrics {
  const registry = new Registry();
  registerProcessMetrics(registry);
  new Gauge({
    name: "carbonmon_intensity_g_per_kwh",
    help: "Latest carbon intensity answered for each zone in use, grams CO2eq per kWh, with the provider that gave it.",
    labelNames: ["zone", "provider", "signal", "emission_factor"],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of intensity()?.latestPoints() ?? [])
        this.set({ zone: p.zone, provider: p.provider, signal: p.signal, emission_factor: p.emissionFactor }, p.gPerKwh);
    },
  });
  const requests = new Counter({
    name: "carbonmon_provider_requests_total",
    help: "Calls to each provider by outcome: ok, circuit_open and budget_exhausted (refused without asking), or the error code in lower case.",
    labelNames: ["provider", "outcome"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "carbonmon_provider_request_duration_seconds",
    help: "Time one provider call took (retries included), seconds.",
    labelNames: ["provider"],
    buckets: PROVIDER_BUCKETS,
    registers: [registry],
  });
  const guards = () => {
    const i = intensity();
    return (i?.providers ?? []).flatMap((p) => {
      const g = i!.guard(p.name);
      return g ? [{ name: p.name, guard: g }] : [];
    });
  };
  new Gauge({
    name: "carbonmon_provider_circuit_open",
    help: "1 while a provider's circuit breaker is open (it is not asked), else 0.",
    labelNames: ["provider"],
    registers: [registry],
    collect() {
      this.reset();
      for (const { name, guard } of guards()) this.set({ provider: name }, guard.health() === "circuit_open" ? 1 : 0);
    },
  });
  new Gauge({
    name: "carbonmon_provider_budget_remaining",
    help: "Requests left in a provider's budget now (providers with a budget: electricitymaps, watttime, ukgrid).",
    labelNames: ["provider"],
    registers: [registry],
    collect() {
      this.reset();
      for (const { name, guard } of guards()) if (guard.budget) this.set({ provider: name }, Math.floor(guard.remaining()));
    },
  });
  new Counter({
    name: "carbonmon_intensity_cache_requests_total",
    help: "Cache lookups by result: hit (answered from the cache), miss (loaded upstream), coalesced (joined a load in flight).",
    labelNames: ["result"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [result, n] of Object.entries(cache.lookups)) this.inc({ result }, n);
    },
  });
  new Gauge({
    name: "carbonmon_intensity_cache_bytes",
    help: "Estimated bytes of the answers the cache keeps now (at most CARBONMON_INTENSITY_CACHE_MAX_BYTES).",
    registers: [registry],
    collect() {
      this.set(cache.bytes);
    },
  });
  new Gauge({
    name: "carbonmon_intensity_cache_entries",
    help: "Answers the cache keeps now.",
    registers: [registry],
    collect() {
      this.set(cache.size);
    },
  });
  return {
    registry,
    grpc: grpcMetrics(registry),
    providerCall(provider, outcome, seconds) {
      requests.inc({ provider, outcome });
      duration.observe({ provider }, seconds);
    },
  };
}
