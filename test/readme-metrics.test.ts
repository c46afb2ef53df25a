/** The README's metrics table against the registries of a real agent and intensity service: same names, types, labels, services. */
import { readFileSync } from "node:fs";
import test from "ava";
import type { Registry } from "prom-client";
import { startTestAgent, startTestIntensity } from "./helpers/grpc.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const section = /## Metrics and health\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? "";

type Row = { type: string; labels: string[]; services: string[] };

function documented(): Map<string, Row> {
  const rows = new Map<string, Row>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const name = /^`([a-z_:]+)`$/.exec(cells[1] ?? "")?.[1];
    if (!name || cells.length < 6) continue;
    rows.set(name, {
      type: cells[2]!,
      labels: [...cells[3]!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!).sort(),
      services: cells[4]!.split(",").map((s) => s.trim()),
    });
  }
  return rows;
}

function registered(registry: Registry): Map<string, { type: string; labels: string[] }> {
  const out = new Map<string, { type: string; labels: string[] }>();
  for (const m of registry.getMetricsAsArray() as unknown as Array<{ name: string; type: string; labelNames: string[] }>) {
    if (/^(process|nodejs)_/.test(m.name)) continue; // prom-client's defaults: one row
    out.set(m.name, { type: m.type, labels: [...m.labelNames].sort() });
  }
  return out;
}

test("the README's metrics table lists every metric of both registries with its type, labels and service, and nothing else", async (t) => {
  const agent = await startTestAgent({ CARBONMON_AGENT_METRICS_LISTEN: "127.0.0.1:0" });
  t.teardown(() => agent.close());
  const intensity = await startTestIntensity({ CARBONMON_INTENSITY_METRICS_LISTEN: "127.0.0.1:0" });
  t.teardown(() => intensity.close());
  const rows = documented();
  t.true(rows.size > 15, "the table is found");
  const seen = new Set<string>();
  for (const [service, registry] of [
    ["agent", agent.metrics!],
    ["intensity", intensity.metrics!],
  ] as const) {
    for (const [name, m] of registered(registry)) {
      seen.add(name);
      const row = rows.get(name);
      t.truthy(row, `${name} (${service}) is missing from the README`);
      if (!row) continue;
      t.is(row.type, m.type, `${name}: type`);
      t.deepEqual(row.labels, m.labels, `${name}: labels`);
      t.true(row.services.includes(service), `${name}: service ${service}`);
    }
    t.true(
      registry.getMetricsAsArray().some((m) => (m as unknown as { name: string }).name === "process_cpu_seconds_total"),
      "the defaults are registered",
    );
  }
  t.deepEqual(
    [...rows.keys()].filter((n) => !seen.has(n)),
    [],
    "rows for metrics no registry has",
  );
  t.true(section.includes("| `process_*`, `nodejs_*` |"));
});
