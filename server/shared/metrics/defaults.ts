/** prom-client's process and Node.js metrics, as both services register them. */
import { collectDefaultMetrics, type Registry } from "prom-client";

/**
 * Gauges whose names end in _total, which Prometheus reserves for counters (`promtool check metrics`
 * rejects them); the same counts stay available per type as nodejs_active_handles{type} and the like.
 */
const MISNAMED = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED) registry.removeSingleMetric(name);
}
