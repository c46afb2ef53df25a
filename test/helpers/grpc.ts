/** Starting the real servers on 127.0.0.1:0 and calling them through the generated clients. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, Metadata, type Client, type ServiceError } from "@grpc/grpc-js";
import { BeginWindowRequest, EnergyMonitorClient, type BeginWindowResponse } from "../../proto/gen/carbonmon/agent/v1/agent.js";
import { CarbonIntensityClient } from "../../proto/gen/carbonmon/intensity/v1/intensity.js";
// The services are imported when first started: a test of one service does not load the other's code.
import type { Agent, AgentOptions } from "../../server/agent/main.js";
import type { IntensityOptions, IntensityServer } from "../../server/intensity/main.js";
import type { Clock } from "../../server/shared/clock.js";
import { loadAgentConfig, loadIntensityConfig } from "../../server/shared/config.js";
import { silentLogger } from "../../server/shared/log.js";

/** A fresh data dir; the returned function removes it. */
export function tempDataDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-data-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface TestAgent extends Agent {
  client: EnergyMonitorClient;
  close(): Promise<void>;
}

/** The agent on 127.0.0.1:0 with env-style overrides (defaults: no NVML library, an empty powercap root). */
export async function startTestAgent(env: Record<string, string> = {}, clock?: Clock, options: AgentOptions = {}): Promise<TestAgent> {
  const data = tempDataDir();
  const config = loadAgentConfig({
    env: {
      CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
      CARBONMON_DATA_DIR: data.dir,
      CARBONMON_NVML_LIBRARY: "/nonexistent/libnvidia-ml.so.1",
      CARBONMON_POWERCAP_ROOT: join(data.dir, "no-powercap"),
      CARBONMON_AGENT_METRICS_LISTEN: "",
      ...env,
    },
  });
  const { startAgent } = await import("../../server/agent/main.js");
  const agent = await startAgent(config, silentLogger(), clock, options);
  const client = new EnergyMonitorClient(agent.running.address, credentials.createInsecure());
  return {
    ...agent,
    client,
    close: async () => {
      client.close();
      await agent.running.shutdown(1000);
      data.cleanup();
    },
  };
}

export interface TestIntensity extends IntensityServer {
  client: CarbonIntensityClient;
  close(): Promise<void>;
}

/** The intensity service on 127.0.0.1:0; env may name its CARBONMON_DATA_DIR (kept), else a temporary one. */
export async function startTestIntensity(env: Record<string, string> = {}, options: IntensityOptions = {}): Promise<TestIntensity> {
  const data = env.CARBONMON_DATA_DIR ? { dir: env.CARBONMON_DATA_DIR, cleanup: () => undefined } : tempDataDir();
  const config = loadIntensityConfig({
    env: {
      CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
      CARBONMON_DATA_DIR: data.dir,
      CARBONMON_LOG_LEVEL: "silent",
      CARBONMON_INTENSITY_METRICS_LISTEN: "",
      ...env,
    },
  });
  const { startIntensity } = await import("../../server/intensity/main.js");
  const server = await startIntensity(config, silentLogger(), options);
  const client = new CarbonIntensityClient(server.running.address, credentials.createInsecure());
  return {
    ...server,
    client,
    close: async () => {
      client.close();
      await server.running.shutdown(1000);
      data.cleanup();
    },
  };
}

type Callback<Res> = (err: ServiceError | null, res: Res) => void;

/** Calls a generated unary method as a promise: `await call(client, client.getHost, {})`. */
export function call<Req, Res>(client: Client, method: (req: Req, cb: Callback<Res>) => unknown, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
  });
}

/** BeginWindow with the request's other fields at their defaults (BeginWindowRequest.fromPartial). */
export function beginWindow(client: EnergyMonitorClient, request: Partial<BeginWindowRequest>): Promise<BeginWindowResponse> {
  return call<BeginWindowRequest, BeginWindowResponse>(client, client.beginWindow, BeginWindowRequest.fromPartial(request));
}

/**
 * A unary call to the agent whose answer is kept as the bytes sent: begin_time and end_time at full
 * precision (the generated decoder's Date has whole milliseconds; read them with readEdgesMs).
 */
export function rawAgentCall<Req>(client: Client, method: string, encode: (r: Req) => Uint8Array, request: Req): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      `/carbonmon.agent.v1.EnergyMonitor/${method}`,
      (r: Req) => Buffer.from(encode(r)),
      (b: Buffer) => b,
      request,
      new Metadata(),
      {},
      (err, res) => (err ? reject(err) : resolve(res!)),
    ),
  );
}
