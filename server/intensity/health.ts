/**
 * The intensity service's health follows its providers: the named service
 * (carbonmon.intensity.v1.CarbonIntensity) is NOT_SERVING while every provider of the chain is failing
 * (unconfigured, or its last call failed, or its breaker is open) and the cache holds no valid answer;
 * the overall health ("") stays SERVING while the process answers (serve.ts).
 */
import type { HealthService } from "../shared/health.js";
import type { Logger } from "../shared/log.js";
import type { TtlCache } from "./cache.js";
import type { Intensity } from "./intensity.js";

/** Why the service cannot answer anything now, or undefined when it can. */
export function cannotAnswer(intensity: Intensity, cache: TtlCache): string | undefined {
  const failing = intensity.providers.map((p) => {
    if (p.unconfiguredReason !== undefined) return `${p.name}: ${p.unconfiguredReason}`;
    const guard = intensity.guard(p.name);
    const health = guard?.health() ?? "healthy";
    return health === "healthy" ? undefined : `${p.name}: ${health}${guard?.lastError ? ` (${guard.lastError})` : ""}`;
  });
  if (failing.some((f) => f === undefined) || cache.hasFresh()) return undefined;
  return failing.join("; ");
}

/** Re-evaluates every everyMs (breakers open and close with time); returns a stop function. */
export function followProviderHealth(
  intensity: Intensity,
  cache: TtlCache,
  health: HealthService,
  service: string,
  everyMs: number,
  log: Logger,
): () => void {
  let serving = true;
  const update = (): void => {
    const why = cannotAnswer(intensity, cache);
    if ((why === undefined) === serving) return;
    serving = why === undefined;
    health.setStatus(service, serving ? "SERVING" : "NOT_SERVING");
    if (serving) log.info({ service }, "a provider answers again: health is SERVING");
    else log.error({ reasons: why }, `every provider is failing and nothing is cached: ${service} health is NOT_SERVING`);
  };
  update();
  const timer = setInterval(update, everyMs).unref();
  return () => clearInterval(timer);
}
