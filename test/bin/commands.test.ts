/**
 * The client commands against real services: host, windows, intensity now|history|forecast and their
 * failures run in this process (cli-in-process.ts); watch (stopped by SIGINT), a bad option's exit code and
 * demo run as real processes.
 */
import test from "ava";
import { createAgentClient } from "../../client/index.js";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent, startTestIntensity } from "../helpers/grpc.js";
import { until as waitFor } from "../helpers/prom.js";
import { carbonmonHere } from "./cli-in-process.js";
import { carbonmon, start, until } from "./cli-process.js";

async function agentWithGpu(t: { teardown(fn: () => void | Promise<void>): void }) {
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 90, ms: 1000 }] }] });
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath });
  t.teardown(async () => (await agent.close(), nvml.cleanup()));
  return agent.running.address;
}

test("host --json and host against an agent", async (t) => {
  const address = await agentWithGpu(t);
  const r = await carbonmonHere(["host", "--agent", address, "--json"]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.split("\n").length, 2, "one line");
  t.false(r.stdout.includes("null"), "no nulls: unset fields are left out");
  const host = JSON.parse(r.stdout);
  t.is(host.gpus.length, 1);
  t.false("simulated" in host.gpus[0], "false is the default: left out");
  t.is(host.samplingPeriod, "0.100s", "Duration as protobuf JSON writes it");
  t.is(host.gpus[0].status, "DEVICE_STATUS_OK", "enums by name");
  const text = await carbonmonHere(["host", "--agent", address]);
  t.regex(text.stdout, /^gpu:0\s+\S.*\sup\s+ok\b/m);
  t.false(text.stdout.includes("down"));
  t.regex(text.stdout, /backend nvml: ok/);
  t.regex(text.stdout, /sampling every 100 ms, every 1000 ms when idle \(idle now\)/);
});

test("host shows a lost GPU down, with the reason", async (t) => {
  const nvml = fakeNvml({ gpus: [{ lostAfterMs: 200 }, {}] });
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath, CARBONMON_IDLE_SAMPLING_PERIOD_MS: "100" });
  t.teardown(async () => (await agent.close(), nvml.cleanup()));
  await waitFor(() => agent.context.sampler.device("gpu:0")?.status === "lost", "gpu:0 lost");
  const text = await carbonmonHere(["host", "--agent", agent.running.address]);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^gpu:0\s+.*\sdown\s+lost\s+\S/m);
  t.regex(text.stdout, /^gpu:1\s+.*\sup\s+ok\b/m);
  t.regex(text.stdout, /^1 device down$/m);
});

test("windows lists open windows; --all adds ended ones", async (t) => {
  const address = await agentWithGpu(t);
  const client = createAgentClient(address);
  t.teardown(() => client.close());
  await client.beginWindow("test/open", { labels: { job: "7" } });
  await client.beginWindow("test/ended");
  await client.endWindow("test/ended");
  const r = await carbonmonHere(["windows", "--agent", address]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^test\/open\s+\S+\s+open\s+0\s+-\s+job=7$/m);
  t.false(r.stdout.includes("test/ended"));
  const all = JSON.parse((await carbonmonHere(["windows", "--agent", address, "--all", "--json"])).stdout);
  t.deepEqual(all.windows.map((w: { key: string }) => w.key).sort(), ["test/ended", "test/open"], "a ListWindowsResponse");
});

test("watch --json prints one JSON line per sample and exits 0 on SIGINT", async (t) => {
  const address = await agentWithGpu(t);
  const child = start(["watch", "--agent", address, "--json", "--period-ms", "200"]);
  const seen = await until(child, (f) => f.stdout.split("\n").length > 3);
  const lines = seen.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  t.true(Math.abs(lines[1].gpuPowerW["0"] - 90) < 5, JSON.stringify(lines[1]));
  t.is(typeof lines[1].sequence, "string", "uint64 as a string, as protobuf JSON writes it");
  t.false("simulated" in lines[1]);
  child.kill("SIGINT");
  const r = await child.done;
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, "");
});

test("intensity now --location DE against a static provider", async (t) => {
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300" });
  t.teardown(() => intensity.close());
  const r = await carbonmonHere(["intensity", "now", "--location", "DE", "--addr", intensity.running.address]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^DE .* 300\.0 gCO2eq\/kWh\s+provider=static source=configured estimated=no$/m);
  const j = JSON.parse(
    (await carbonmonHere(["intensity", "now", "--location", "DE", "--json"], { CARBONMON_INTENSITY_ADDR: intensity.running.address }))
      .stdout,
  );
  t.is(j.gPerKwh, 300);
  t.is(j.source, "INTENSITY_SOURCE_CONFIGURED", "enums by name");
});

test("intensity history and forecast: hourly values, and a clear NOT_FOUND when no provider forecasts the zone", async (t) => {
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300" });
  t.teardown(() => intensity.close());
  const h = await carbonmonHere([
    "intensity",
    "history",
    "--location",
    "DE",
    "--hours",
    "3",
    "--addr",
    intensity.running.address,
    "--json",
  ]);
  t.is(h.code, 0, h.stderr);
  const series = JSON.parse(h.stdout) as { points: Array<{ gPerKwh: number; provider: string }> };
  t.true(series.points.length >= 3 && series.points.length <= 4, `${series.points.length} hourly points`);
  t.true(series.points.every((p) => p.gPerKwh === 300 && p.provider === "static"));
  const f = await carbonmonHere(["intensity", "forecast", "--location", "DE", "--addr", intensity.running.address]);
  t.is(f.code, 1);
  t.regex(f.stderr, /NOT_FOUND.*no configured provider forecasts zone DE/);
});

test("client commands: unreachable address → one line and exit 1; unknown option → exit 2; --help", async (t) => {
  for (const args of [["host"], ["windows"], ["watch", "--json"], ["intensity", "now", "--location", "DE", "--addr", "127.0.0.1:1"]]) {
    const r = await carbonmonHere(args, { CARBONMON_AGENT_LISTEN: "127.0.0.1:1" });
    t.is(r.code, 1, args.join(" "));
    t.regex(r.stderr, /^carbonmon: cannot reach the (agent|intensity service) at 127\.0\.0\.1:1 \([A-Z_]+: .*\)\n$/);
  }
  const bad = await carbonmon(["watch", "--bogus"]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /carbonmon watch: Unknown option '--bogus'/);
  t.is((await carbonmonHere(["intensity", "now"])).code, 2);
  const zero = await carbonmon(["demo", "--busy-ms", "0"]);
  t.is(zero.code, 2);
  t.regex(zero.stderr, /--busy-ms expects a positive whole number, got "0"/);
  const help = await carbonmonHere(["watch", "--help"]);
  t.regex(help.stdout, /--period-ms N/);
});

test("demo without a GPU uses the simulated GPU, marks every line SIMULATED and exits 0", async (t) => {
  const r = await carbonmon(["demo", "--busy-ms", "300"], { CARBONMON_NVML_LIBRARY: "/nonexistent/libnvidia-ml.so.1" });
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  t.true(
    lines.every((l) => l.startsWith("[SIMULATED] ")),
    r.stdout,
  );
  t.regex(r.stdout, /SIMULATED GPU — these numbers are not measurements/);
  t.regex(r.stdout, /^\[SIMULATED\] gpu:0\s+[\d.]+\s+[\d.]+\s+[\d.]+$/m, "energy, uncertainty and grams");
  // Priced offline at DE's yearly average: provisional while that year's figure is still an estimate.
  t.regex(r.stdout, /^\[SIMULATED\] carbon: (final|provisional \(.*\(offline\).*\))$/m);
  t.regex(r.stdout, /carbon priced for location DE/);
  t.regex(r.stdout, /measuring a 0\.3 s busy loop/);
  t.true(lines.filter((l) => / W /.test(l)).length >= 3);
});
