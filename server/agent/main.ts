import { principalOf } from "../shared/security/principal.js";
import type { Registry } from "prom-client";
import type { Clock } from "../shared/clock.js";
import { systemClock } from "../shared/clock.js";
import type { AgentConfig } from "../shared/config.js";
import type { Logger } from "../shared/log.js";
import { serve, type RunningServer } from "../shared/serve.js";
import { createServerSecurity } from "../shared/security/server-security.js";
import { probeSources } from "./devices/registry.js";
import { PowerHub } from "./api/power-stream.js";
import { CarbonPricer } from "./carbon/pricer.js";
import { AgentStore } from "./storage/store.js";
import { WalCheckpointer } from "./storage/wal-checkpointer.js";
import { WindowManager } from "./windows/manager.js";
import { UtcAnchor } from "../shared/utc-anchor.js";
import { Sampler } from "./energy/sampler.js";
import { IntensityServiceClient } from "./api/intensity-client.js";
import { measurementCodec } from "./api/measurement-codec.js";
import { agentRegistration, type AgentContext } from "./api/service.js";
import { agentMetrics } from "./api/metrics.js";
import { followDeviceHealth } from "./api/device-health.js";
import { instrumentRegistration } from "../shared/metrics/grpc.js";
import { serveMetrics } from "../shared/metrics/http.js";

export interface Agent {
  running: RunningServer;
  context: AgentContext;
  /** The Prometheus registry; undefined when CARBONMON_AGENT_METRICS_LISTEN is empty. */
  metrics?: Registry;
  /** "host:port" of GET /metrics, as bound; undefined: not served. */
  metricsAddress?: string;
}

/** How often the write-ahead log is moved into agent.db (in a worker thread). */
const WAL_CHECKPOINT_EVERY_MS = 5000;

/** Probes the hardware, starts the sampler and serves EnergyMonitor on config.listen. */
export interface AgentOptions {
  /** UTC of the clock's instants (tests step the wall clock through it); default: the system's, re-anchored on steps. */
  utc?: UtcAnchor;
}

export async function startAgent(config: AgentConfig, log: Logger, clock: Clock = systemClock, options: AgentOptions = {}): Promise<Agent> {
  // First: a refusal to serve insecurely, or an unreadable certificate, must not wait for the hardware.
  const security = createServerSecurity(config.security, config.listen, log);
  const intensityClient = config.intensityAddr ? new IntensityServiceClient(config.intensityAddr, config.intensitySecurity) : undefined;
  const sources = await probeSources(config, clock);
  for (const s of sources) log.info({ backend: s.state(), devices: s.devices().length }, "backend probed");
  const sampler = new Sampler(sources, { clock, idleAfterMs: config.idleAfterMs, samplingPeriodMs: config.samplingPeriodMs });
  sampler.start();
  let store: AgentStore | undefined;
  let windows: WindowManager | undefined;
  let checkpointer: WalCheckpointer | undefined;
  // UTC labels follow steps of the system clock; durations never do (shared/utc-anchor.ts).
  const utc =
    options.utc ??
    new UtcAnchor({
      onStep: (stepMs) =>
        log.warn({ stepMs: Math.round(stepMs) }, "the system clock stepped; UTC re-anchored (durations and energies are unaffected)"),
    });
  const pricer = new CarbonPricer(config, log, intensityClient, utc);
  try {
    store = new AgentStore(config.dataDir, clock.nowMs(), {
      onFlushError: (err) =>
        log.error({ err }, "moving the window journal into agent.db failed; the journal keeps the records, retrying in 1 s"),
      onJournalDamaged: (message) => log.error(message),
      onRecordSetAside: (message) => log.error(message),
      journal: { mode: config.journalMode },
      log,
    });
    const journal = store.journalMode;
    if (journal.mode === "mapped")
      log.info(
        { journal: journal.mode },
        "window journal mapped into memory (CARBONMON_JOURNAL_MODE=mapped): keep agent.journal off copy-on-write filesystems and never truncate it while the agent runs",
      );
    else if (config.journalMode === "mapped")
      log.warn({ journal: journal.mode, reason: journal.fallbackReason }, "window journal cannot be mapped; it appends with write(2)");
    else log.info({ journal: journal.mode }, "window journal appends with write(2)");
    const opened = store;
    checkpointer = new WalCheckpointer(store.path, {
      everyMs: WAL_CHECKPOINT_EVERY_MS,
      changes: () => opened.totalChanges,
      log,
      onDied: () => opened.useAutocheckpoint(),
      disk: store.disk,
    });
    const metrics =
      config.metricsListen !== undefined
        ? agentMetrics({ sampler, openWindows: () => windows?.openCount ?? 0, carbonPending: () => opened.carbonPendingCount() })
        : undefined;
    windows = new WindowManager({
      config,
      sampler,
      pricer,
      store,
      codec: measurementCodec,
      clock,
      utc,
      log,
      ...(metrics ? { onEnded: (r) => metrics.windowEnded(r) } : {}),
    });
    const power = new PowerHub(sampler, { config, log, utc });
    await firstReadings(sampler, config.firstReadingTimeoutMs, log);
    const context: AgentContext = { config, sampler, power, windows, startedAtMs: clock.nowMs(), utc, log };
    const [manager, walWorker] = [windows, checkpointer];
    const registration = agentRegistration(context);
    // Wrapped for the metrics, or for the access log at debug; otherwise the handlers run as they are.
    const instrumented =
      metrics || log.isLevelEnabled("debug")
        ? instrumentRegistration(registration, { metrics: metrics?.grpc, log, principalOf: (call) => principalOf(call).name })
        : registration;
    let deviceHealth: ReturnType<typeof followDeviceHealth> | undefined;
    let endpoint: Awaited<ReturnType<typeof serveMetrics>>;
    const running = await serve({
      listen: config.listen,
      services: [instrumented],
      log,
      security,
      onDraining: () => {
        deviceHealth?.stop();
        power.close();
      },
      onShutdown: async () => {
        await endpoint?.close();
        manager.close();
        pricer.close();
        await sampler.stop();
        await walWorker.stop();
        opened.close();
      },
    });
    deviceHealth = followDeviceHealth(sampler, running.health, registration.name, config.allowNoDevices, log);
    endpoint = metrics && config.metricsListen !== undefined ? await serveMetrics(config.metricsListen, metrics.registry, log) : undefined;
    return {
      running,
      context,
      ...(metrics ? { metrics: metrics.registry } : {}),
      ...(endpoint ? { metricsAddress: endpoint.address } : {}),
    };
  } catch (err) {
    windows?.close();
    pricer.close();
    await checkpointer?.stop();
    store?.close();
    await sampler.stop();
    throw err;
  }
}

/**
 * Waits (at most timeoutMs) until every available device has a reading; logs any that has none. A window
 * begun before a device's first reading could never be measured on it (no reading brackets its begin), so
 * the port opens once every device has one.
 */
async function firstReadings(sampler: Sampler, timeoutMs: number, log: Logger): Promise<void> {
  const startMs = performance.now();
  const ids = sampler.devices().map((d) => d.id);
  if (timeoutMs > 0) await sampler.waitForReadingsAfter(-Infinity, ids, timeoutMs);
  const late = sampler.devices().filter((d) => d.status === "ok" && !sampler.hasReading(d.id));
  const waitedMs = Math.round(performance.now() - startMs);
  if (late.length === 0) log.info({ devices: ids.length, waitedMs }, "first readings in; serving");
  else if (timeoutMs === 0)
    log.info(
      { devices: late.map((d) => d.id) },
      "serving at once (CARBONMON_FIRST_READING_TIMEOUT_MS=0), before these devices' first readings",
    );
  else
    log.warn(
      { devices: late.map((d) => d.id), waitedMs },
      `no first reading within ${timeoutMs} ms from these devices; serving anyway (a window begun before a device's first reading reports that device missing)`,
    );
}
