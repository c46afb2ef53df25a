/**
 * A real Prometheus (Debian's `prometheus`, started here with a generated configuration in a temporary
 * directory, on 127.0.0.1) scrapes a real agent (fake NVML: GPUs at scripted constant powers; fake RAPL)
 * and a real intensity service (fake ElectricityMaps) that prices the agent's windows. Queried over its
 * HTTP API: every documented metric is there, rate() of each GPU's energy counter is its scripted power
 * within 1 %, and every expression of the Grafana dashboard returns data. `promtool check metrics` passes
 * on both services' output.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import type { EndWindowRequest, Measurement } from "../../proto/gen/carbonmon/agent/v1/agent.js";
import type { IntensityPoint, IntensityRequest } from "../../proto/gen/carbonmon/intensity/v1/intensity.js";
import { FAKE_EM_TOKEN, hourlySeries, startFakeElectricityMaps } from "../helpers/fake-electricitymaps.js";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { call, startTestAgent, startTestIntensity, beginWindow } from "../helpers/grpc.js";
import { intelTwoSocketTree } from "../helpers/powercap.js";
import { until } from "../helpers/prom.js";

const POWERS_W = [95, 240, 410];
const HOUR_MS = 3_600_000;
const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const DASHBOARD = JSON.parse(readFileSync(new URL("../../deploy/grafana/carbonmon.json", import.meta.url), "utf8")) as {
  panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(base: string, expr: string): Promise<PromResult[]> {
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { result: PromResult[] } };
  if (body.status !== "success") throw new Error(`${expr}: ${body.error}`);
  return body.data!.result;
}

test("a real Prometheus scrapes both services: every metric, GPU power from rate() within 1 %, the dashboard's expressions", async (t) => {
  // The services.
  const lastHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const em = await startFakeElectricityMaps({
    series: { DE: hourlySeries("DE", lastHour - 47 * HOUR_MS, 48, (i) => 300 + i) },
    nowMs: () => Date.now(),
  });
  t.teardown(() => em.close());
  const intensity = await startTestIntensity({
    ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
    CARBONMON_INTENSITY_METRICS_LISTEN: "127.0.0.1:0",
  });
  t.teardown(() => intensity.close());
  const nvml = fakeNvml({ gpus: POWERS_W.map((powerW, i) => ({ uuid: `GPU-e2e-${i}`, profile: [{ powerW, ms: 1000 }] })) });
  const tree = intelTwoSocketTree();
  t.teardown(() => (nvml.cleanup(), tree.cleanup()));
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_POWERCAP_ROOT: tree.root,
    CARBONMON_AGENT_METRICS_LISTEN: "127.0.0.1:0",
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_LOCATION: "DE",
  });
  t.teardown(() => agent.close());

  // promtool on both outputs.
  for (const address of [agent.metricsAddress!, intensity.metricsAddress!]) {
    const text = await (await fetch(`http://${address}/metrics`)).text();
    const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    t.is(check.status, 0, `promtool check metrics on ${address}: ${check.stdout}${check.stderr}`);
  }

  // Prometheus.
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-prometheus-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, "prometheus.yml"),
    [
      "global:",
      "  scrape_interval: 1s",
      "  scrape_timeout: 900ms",
      "scrape_configs:",
      "  - job_name: carbonmon-agent",
      `    static_configs: [{ targets: ["${agent.metricsAddress}"] }]`,
      "  - job_name: carbonmon-intensity",
      `    static_configs: [{ targets: ["${intensity.metricsAddress}"] }]`,
      "",
    ].join("\n"),
  );
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const prometheus = spawn(
    "/usr/bin/prometheus",
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  prometheus.stderr.on("data", (d) => (stderr += String(d)));
  t.teardown(() => void prometheus.kill("SIGTERM"));
  await until(
    async () =>
      (await fetch(`${base}/-/ready`)
        .then((r) => r.ok)
        .catch(() => false)) || prometheus.exitCode !== null,
    "Prometheus ready",
    60_000,
  );
  t.is(prometheus.exitCode, null, stderr);

  // Traffic while it scrapes: windows priced by the intensity service, a refused Begin, intensity lookups.
  const ask = (): Promise<IntensityPoint> =>
    call<IntensityRequest, IntensityPoint>(intensity.client, intensity.client.getCurrentIntensity, {
      location: { zone: "DE" },
      emissionFactor: 0,
      provider: "",
    });
  const begin = (key: string) => beginWindow(agent.client, { key });
  const end = (key: string) =>
    call<EndWindowRequest, Measurement>(agent.client, agent.client.endWindow, { key, waitForCounterUpdate: false });
  let n = 0;
  const traffic = async (): Promise<void> => {
    const key = `job-${n++}`;
    await begin(key);
    await begin(key).catch(() => undefined); // ALREADY_EXISTS: an error for the error panel
    await ask();
    await end(key);
  };
  await begin("long-running");
  await traffic();
  const timer = setInterval(() => void traffic().catch(() => undefined), 300);
  t.teardown(() => clearInterval(timer));

  // Enough scrapes for rate() over 5 s: at least 5 samples of each GPU in the last 5 s.
  await until(
    async () => {
      const r = await query(base, "min(count_over_time(carbonmon_gpu_energy_joules_total[5s]))");
      return Number(r[0]?.value[1] ?? 0) >= 5;
    },
    "5 s of scrapes",
    60_000,
  );

  // Every documented metric is present.
  const documented = [...README.matchAll(/^\| `([a-z_]+)` \| (counter|gauge|histogram) \|/gm)].map((m) => [m[1]!, m[2]!] as const);
  t.true(documented.length >= 20);
  for (const [name, type] of documented) {
    const series = type === "histogram" ? `${name}_bucket` : name;
    const found = await query(base, `count(${series})`);
    t.true(Number(found[0]?.value[1] ?? 0) > 0, `${series} in Prometheus`);
  }
  t.true((await query(base, "process_cpu_seconds_total")).length >= 2, "process defaults from both jobs");

  // rate() of each GPU's energy counter is its scripted power, within 1 %.
  const rates = await query(base, "rate(carbonmon_gpu_energy_joules_total[5s])");
  t.is(rates.length, POWERS_W.length);
  for (const r of rates) {
    const powerW = POWERS_W[Number(r.metric.gpu)]!;
    const watts = Number(r.value[1]);
    t.log(`gpu ${r.metric.gpu}: rate ${watts.toFixed(3)} W, scripted ${powerW} W`);
    t.true(Math.abs(watts - powerW) <= 0.01 * powerW, `gpu ${r.metric.gpu} (${r.metric.uuid}): rate ${watts} W, scripted ${powerW} W`);
    t.is(r.metric.model_name, "NVIDIA H100 80GB HBM3");
    t.truthy(r.metric.hostname);
  }

  // Every expression of the Grafana dashboard returns data (Grafana's variables replaced by what it would send).
  const exprs = DASHBOARD.panels.flatMap((p) => (p.targets ?? []).map((tg) => ({ panel: p.title, expr: tg.expr })));
  t.true(exprs.length >= 20);
  for (const { panel, expr } of exprs) {
    const concrete = expr.replaceAll("$__rate_interval", "5s").replaceAll("$__range", "5s").replaceAll("$hostname", ".+");
    const result = await query(base, concrete);
    t.true(result.length > 0, `${panel}: ${concrete} returned no data`);
  }
});
