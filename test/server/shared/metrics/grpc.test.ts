/**
 * The gRPC wrapper on a real agent: the access log at debug (one line per RPC with method, code, duration,
 * window key), and server-streaming RPCs counted with the status they end with.
 */
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import test from "ava";
import { EnergyMonitorClient } from "../../../../proto/gen/carbonmon/agent/v1/agent.js";
import { startAgent } from "../../../../server/agent/main.js";
import { loadAgentConfig } from "../../../../server/shared/config.js";
import { fakeNvml } from "../../../helpers/fake-nvml.js";
import { tempDataDir, beginWindow } from "../../../helpers/grpc.js";
import { scrape, until, value } from "../../../helpers/prom.js";
import { capturingLogger } from "../../../helpers/security.js";

const SERVICE = "carbonmon.agent.v1.EnergyMonitor";

async function agent(t: import("ava").ExecutionContext, level: string, metricsListen: string) {
  const nvml = fakeNvml({ gpus: [{ uuid: "GPU-0" }] });
  const data = tempDataDir();
  const { log, lines } = capturingLogger(level);
  const config = loadAgentConfig({
    env: {
      CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
      CARBONMON_DATA_DIR: data.dir,
      CARBONMON_NVML_LIBRARY: nvml.libraryPath,
      CARBONMON_POWERCAP_ROOT: `${data.dir}/none`,
      CARBONMON_AGENT_METRICS_LISTEN: metricsListen,
    },
  });
  const a = await startAgent(config, log);
  const client = new EnergyMonitorClient(a.running.address, credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await a.running.shutdown(1000);
    nvml.cleanup();
    data.cleanup();
  });
  return { a, client, lines };
}

test("access log at debug: one line per RPC with its method, code, duration and window key", async (t) => {
  const { client, lines } = await agent(t, "debug", "");
  const begin = (key: string) => beginWindow(client, { key });
  await begin("train/42");
  await t.throwsAsync(begin("train/42"));
  const rpcs = lines.filter((l) => l.msg === "rpc");
  t.deepEqual(
    rpcs.map((l) => [l.rpc, l.code, l.key]),
    [
      [`${SERVICE}/BeginWindow`, "OK", "train/42"],
      [`${SERVICE}/BeginWindow`, "ALREADY_EXISTS", "train/42"],
    ],
  );
  for (const l of rpcs) {
    t.true(typeof l.ms === "number" && l.ms >= 0);
    t.is(l.level, 20, "debug");
    t.regex(String(l.peer), /127\.0\.0\.1/);
  }
});

test("a WatchPower stream is counted once, with the status it ends with (CANCELLED when the client leaves)", async (t) => {
  const { a, client } = await agent(t, "silent", "127.0.0.1:0");
  const stream = client.watchPower({ gpuIndices: [], cpuIndices: [], skipGpus: false, skipCpus: false });
  await new Promise<void>((resolve) => stream.once("data", () => resolve()));
  const ended = new Promise<void>((resolve) => stream.on("error", (err: ServiceError) => (t.is(err.code, status.CANCELLED), resolve())));
  stream.cancel();
  await ended;
  const rpc = { grpc_service: SERVICE, grpc_method: "WatchPower", grpc_type: "server_stream" };
  await until(
    async () =>
      (await scrape(a.metricsAddress!)).samples.some(
        (s) => s.name === "grpc_server_handled_total" && s.labels.grpc_method === "WatchPower",
      ),
    "the stream counted",
  );
  const m = await scrape(a.metricsAddress!);
  t.is(value(m, "grpc_server_started_total", rpc), 1);
  t.is(value(m, "grpc_server_handled_total", { ...rpc, grpc_code: "CANCELLED" }), 1);
  t.is(value(m, "grpc_server_handling_seconds_count", rpc), 1);
});
