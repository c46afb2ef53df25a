/** prom-client's process and Node.js metrics, as both services register them. */
import { collectDefaultMetrics, type Registry } from "prom-client";

/**
 * Left out: gauges whose names end in _total, which Prometheus reserves for counters (`promtool check
 * metrics` rejects them; the same counts stay as nodejs_active_handles{type} and the like), and
 * nodejs_eventloop_lag_seconds, which makes every scrape wait for a turn of the event loop (about 1 ms of
 * a scrape's time on a busy agent) to measure one sample; the event-loop delay percentiles
 * (nodejs_eventloop_lag_p50_seconds, _p99_, _max_, …) cover it continuously.
 */
const LEFT_OUT = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
  "nodejs_eventloop_lag_seconds",
];

export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of LEFT_OUT) registry.removeSingleMetric(name);
}
