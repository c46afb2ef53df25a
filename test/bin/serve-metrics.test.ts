/** `carbonmon serve` serves both services' /metrics, each on its own port, and logs where. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { scrape } from "../helpers/prom.js";
import { start, until } from "./cli-process.js";

test("carbonmon serve: the agent's and the intensity service's /metrics, on their own ports", async (t) => {
  const data = mkdtempSync(join(tmpdir(), "carbonmon-serve-"));
  const child = start(["serve"], {
    CARBONMON_LOG_LEVEL: "info",
    CARBONMON_DATA_DIR: data,
    CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
    CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
    CARBONMON_AGENT_METRICS_LISTEN: "127.0.0.1:0",
    CARBONMON_INTENSITY_METRICS_LISTEN: "127.0.0.1:0",
    CARBONMON_NVML_LIBRARY: "/nonexistent/libnvidia-ml.so.1",
    CARBONMON_FIRST_READING_TIMEOUT_MS: "0",
  });
  t.teardown(async () => {
    child.kill("SIGTERM");
    await child.done;
    rmSync(data, { recursive: true, force: true });
  });
  const serving = (stderr: string) =>
    stderr
      .split("\n")
      .filter((l) => l.includes('"serving metrics"'))
      .map((l) => JSON.parse(l) as { service: string; address: string });
  const out = await until(child, (f) => serving(f.stderr).length === 2, 60_000);
  const byService = new Map(serving(out.stderr).map((l) => [l.service, l.address.replace(/^http:\/\//, "").replace(/\/metrics$/, "")]));
  const agent = await scrape(byService.get("carbonmon-agent")!);
  t.is(agent.types.get("carbonmon_windows_open"), "gauge");
  t.false(agent.types.has("carbonmon_provider_requests_total"));
  const intensity = await scrape(byService.get("carbonmon-intensity")!);
  t.is(intensity.types.get("carbonmon_provider_requests_total"), "counter");
  t.false(intensity.types.has("carbonmon_windows_open"));
});
