import type { IntensityConfig } from "../shared/config.js";
import type { Logger } from "../shared/log.js";
import { serve, type RunningServer } from "../shared/serve.js";
import { intensityRegistration } from "./service.js";

export interface IntensityServer {
  running: RunningServer;
  config: IntensityConfig;
}

/** Starts the intensity service on config.listen. */
export async function startIntensity(config: IntensityConfig, log: Logger): Promise<IntensityServer> {
  const running = await serve({ listen: config.listen, services: [intensityRegistration()], log });
  return { running, config };
}
