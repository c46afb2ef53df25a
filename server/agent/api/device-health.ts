/**
 * The agent's service health follows its devices: the named service (carbonmon.agent.v1.EnergyMonitor) is
 * NOT_SERVING while no device can be read, unless CARBONMON_ALLOW_NO_DEVICES=true; the overall health ("")
 * is left to serve.ts (SERVING while the process answers). A readiness probe checks the named service, a
 * liveness probe the overall one (README, "Metrics and health").
 */
import type { HealthService } from "../../shared/health.js";
import type { Logger } from "../../shared/log.js";
import type { Sampler } from "../energy/sampler.js";

export interface DeviceHealth {
  /** Stops following the devices (shutdown: serve.ts marks everything NOT_SERVING). */
  stop(): void;
}

/** Whether any device can be read, and if not, why each one cannot. */
export function devicesReadable(sampler: Sampler): { up: boolean; reasons: string[] } {
  const devices = sampler.devices();
  if (devices.some((d) => d.status === "ok")) return { up: true, reasons: [] };
  const reasons = devices.map((d) => `${d.id}: ${d.status}${d.statusReason ? ` (${d.statusReason})` : ""}`);
  for (const s of sampler.states()) if (s.status !== "ok") reasons.push(`${s.name}: ${s.reason ?? s.status}`);
  return { up: false, reasons: reasons.length > 0 ? reasons : ["no device found"] };
}

export function followDeviceHealth(
  sampler: Sampler,
  health: HealthService,
  service: string,
  allowNoDevices: boolean,
  log: Logger,
): DeviceHealth {
  let stopped = false;
  let version = -1;
  let serving: boolean | undefined;
  const update = (): void => {
    if (stopped || version === sampler.statusVersion) return; // statuses change rarely; readings often
    version = sampler.statusVersion;
    const { up, reasons } = devicesReadable(sampler);
    const now = up || allowNoDevices;
    if (now === serving) return;
    const before = serving;
    serving = now;
    health.setStatus(service, now ? "SERVING" : "NOT_SERVING");
    if (!up && allowNoDevices) log.warn({ reasons }, "no device can be read; health stays SERVING (CARBONMON_ALLOW_NO_DEVICES=true)");
    else if (!up)
      log.error(
        { reasons },
        `no device can be read: ${service} health is NOT_SERVING (set CARBONMON_ALLOW_NO_DEVICES=true to serve anyway)`,
      );
    else if (before === false) log.info({ service }, "a device can be read again: health is SERVING");
  };
  update();
  const unsubscribe = sampler.onUpdate(update);
  return {
    stop() {
      stopped = true;
      unsubscribe();
    },
  };
}
