/** Shared set-up for the client tests: a real agent over a fake NVML of two GPUs at constant power. */
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent, type TestAgent } from "../helpers/grpc.js";
import { intelTwoSocketTree } from "../helpers/powercap.js";

export const GPU_POWER_W = [300, 500] as const;
/** 1.5 ms of wire rounding at the highest power, plus a little. */
export const MS_TOLERANCE_J = 0.5 * 1.5 + 0.05;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(condition: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition() && performance.now() < deadline) await sleep(10);
  return condition();
}

/** The agent with two fake GPUs (300 W, 500 W) and, with `rapl`, a two-socket Intel powercap tree. */
export async function agentWithGpus(
  t: { teardown(fn: () => unknown): void },
  options: { rapl?: boolean; env?: Record<string, string> } = {},
): Promise<TestAgent> {
  const nvml = fakeNvml({ gpus: GPU_POWER_W.map((powerW, i) => ({ uuid: `GPU-${i}`, profile: [{ powerW, ms: 1000 }] })) });
  const tree = options.rapl ? intelTwoSocketTree() : undefined;
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_SAMPLING_PERIOD_MS: "100",
    ...(tree ? { CARBONMON_POWERCAP_ROOT: tree.root } : {}),
    ...options.env,
  });
  t.teardown(async () => (await agent.close(), nvml.cleanup(), tree?.cleanup()));
  await sleep(300); // the sampler's first readings
  return agent;
}
