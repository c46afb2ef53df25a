import type { Clock } from "../shared/clock.js";
import { systemClock } from "../shared/clock.js";
import type { AgentConfig } from "../shared/config.js";
import type { Logger } from "../shared/log.js";
import { serve, type RunningServer } from "../shared/serve.js";
import { probeSources } from "./devices/registry.js";
import { Sampler } from "./sampler.js";
import { agentRegistration, type AgentContext } from "./service.js";

export interface Agent {
  running: RunningServer;
  context: AgentContext;
}

/** Probes the hardware, starts the sampler and serves EnergyMonitor on config.listen. */
export async function startAgent(config: AgentConfig, log: Logger, clock: Clock = systemClock): Promise<Agent> {
  const sources = await probeSources(config, clock);
  for (const s of sources) log.info({ backend: s.state(), devices: s.devices().length }, "backend probed");
  const sampler = new Sampler(sources, { clock });
  sampler.start();
  const context: AgentContext = { config, sampler, startedAtMs: clock.nowMs(), log };
  try {
    const running = await serve({
      listen: config.listen,
      services: [agentRegistration(context)],
      log,
      onShutdown: () => sampler.stop(),
    });
    return { running, context };
  } catch (err) {
    await sampler.stop();
    throw err;
  }
}
