/**
 * The one check of every value a provider returns (pointProblem), at the boundary between providers and
 * the service: a provider that answers an infinite, negative or absurd intensity, a point of another zone,
 * or a time a Timestamp cannot carry has failed (UNAVAILABLE naming it, logged once per answer), so the
 * fallback chain goes on and nothing of that answer is stored, cached or served.
 */
import { AppError, Code } from "../../shared/errors.js";
import type { Logger } from "../../shared/log.js";
import { pointProblem, type Point } from "../core/point.js";
import type { Provider, Query } from "./provider.js";

function check(provider: string, q: Query, points: readonly Point[], log: Logger, what: string): void {
  for (let i = 0; i < points.length; i++) {
    const problem = pointProblem(points[i]!, q.zone);
    if (problem === undefined) continue;
    log.warn({ provider, zone: q.zone, what, index: i, problem }, "provider answered an invalid value; treated as a provider failure");
    throw new AppError(Code.Unavailable, `${provider} answered an invalid value for zone ${q.zone} (${what}: ${problem})`, {
      hint: "the provider's answer was discarded; the next provider of the chain answers instead",
    });
  }
}

/**
 * The provider with every answer of current, range and forecast checked. A proxy whose other members are
 * the provider's own, bound to it, so that state the provider keeps (WattTime's token) stays in one place.
 */
export function validated(p: Provider, log: Logger): Provider {
  const checked: Partial<Provider> = {
    current: async (q) => {
      const point = await p.current(q);
      check(p.name, q, [point], log, "current");
      return point;
    },
    range: async (q, fromMs, toMs) => {
      const points = await p.range(q, fromMs, toMs);
      check(p.name, q, points, log, "range");
      return points;
    },
    ...(p.forecast
      ? {
          forecast: async (q: Query, horizonMs: number) => {
            const points = await p.forecast!(q, horizonMs);
            check(p.name, q, points, log, "forecast");
            return points;
          },
        }
      : {}),
  };
  return new Proxy(p, {
    get(target, prop) {
      if (Object.hasOwn(checked, prop)) return checked[prop as keyof Provider];
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
