/** FleetMonitor: one window across many agents at once (a multi-host job). */
import { CarbonStatus, type BeginWindowResponse } from "../proto/gen/carbonmon/agent/v1/agent.js";
import {
  createAgentClient,
  type AgentClient,
  type AgentClientOptions,
  type BeginWindowOptions,
  type EndWindowOptions,
} from "./agent-client.js";
import { CarbonmonClientError } from "./client-error.js";
import { energyTotals, hasCarbon, type CarbonEmissionMeasurement } from "./measurement.js";

export interface FleetFailure {
  /** The agent's address. */
  host: string;
  /** Where it failed: at BeginWindow (then EndWindow was not asked) or at EndWindow. */
  phase: "begin" | "end";
  error: CarbonmonClientError;
}

export interface FleetBeginResult {
  begun: Record<string, BeginWindowResponse>;
  failed: FleetFailure[];
}

export interface FleetTotal {
  /** The longest host's time, s. */
  time: number;
  gpu_energy_total_j: number;
  cpu_energy_total_j: number;
  dram_energy_total_j: number;
  energy_total_j: number;
  /** Grams of CO2eq summed over the hosts that priced the window (FINAL or PROVISIONAL). */
  carbon_total_g: number;
  /** Some host's grams are provisional: ending again later (GetWindow) may revise them. */
  carbon_provisional: boolean;
  /** Hosts that answered without grams (carbon PENDING or DISABLED): carbon_total_g leaves them out. */
  carbon_missing_hosts: string[];
}

export interface FleetMeasurement {
  /** Per agent address, the hosts that answered. */
  perHost: Record<string, CarbonEmissionMeasurement>;
  /** Sums (time: max) over perHost. */
  total: FleetTotal;
  /** Hosts that failed, with why; the others' results are kept. */
  failed: FleetFailure[];
}

/** Sums over hosts (time: the longest); grams only from hosts that priced the window, and which did not. */
function fleetTotal(perHost: Record<string, CarbonEmissionMeasurement>): FleetTotal {
  const total: FleetTotal = {
    time: 0,
    gpu_energy_total_j: 0,
    cpu_energy_total_j: 0,
    dram_energy_total_j: 0,
    energy_total_j: 0,
    carbon_total_g: 0,
    carbon_provisional: false,
    carbon_missing_hosts: [],
  };
  for (const [host, m] of Object.entries(perHost)) {
    const e = energyTotals(m);
    total.time = Math.max(total.time, m.time);
    total.gpu_energy_total_j += e.gpu;
    total.cpu_energy_total_j += e.cpu;
    total.dram_energy_total_j += e.dram;
    total.energy_total_j += e.total;
    if (!hasCarbon(m.measurement)) total.carbon_missing_hosts.push(host);
    else {
      total.carbon_total_g += m.measurement.totalCarbonG;
      total.carbon_provisional ||= m.measurement.carbonStatus === CarbonStatus.CARBON_STATUS_PROVISIONAL;
    }
  }
  return total;
}

export class FleetMonitor {
  readonly clients: readonly AgentClient[];
  private readonly owned: AgentClient[] = [];
  /** Per key, the hosts whose BeginWindow failed, with the error. */
  private readonly beginFailures = new Map<string, Map<string, CarbonmonClientError>>();

  /** Agents by address (clients are created with `options` and closed by close()) or as clients. */
  constructor(agents: ReadonlyArray<string | AgentClient>, options: AgentClientOptions = {}) {
    this.clients = agents.map((a) => {
      if (typeof a !== "string") return a;
      const client = createAgentClient(a, options);
      this.owned.push(client);
      return client;
    });
  }

  get hosts(): string[] {
    return this.clients.map((c) => c.address);
  }

  /** BeginWindow on every agent concurrently. */
  async begin(key: string, options: BeginWindowOptions = {}): Promise<FleetBeginResult> {
    const settled = await Promise.allSettled(this.clients.map((c) => c.beginWindow(key, options)));
    const begun: Record<string, BeginWindowResponse> = {};
    const failed: FleetFailure[] = [];
    const failures = new Map<string, CarbonmonClientError>();
    settled.forEach((s, i) => {
      const host = this.clients[i]!.address;
      if (s.status === "fulfilled") begun[host] = s.value;
      else {
        const error = CarbonmonClientError.fromServiceError(s.reason, "BeginWindow");
        failures.set(host, error);
        failed.push({ host, phase: "begin", error });
      }
    });
    this.beginFailures.set(key, failures);
    return { begun, failed };
  }

  /** EndWindow on every agent that began the window, concurrently; results per host and in total. */
  async end(key: string, options: EndWindowOptions = {}): Promise<FleetMeasurement> {
    const beginFailed = this.beginFailures.get(key) ?? new Map<string, CarbonmonClientError>();
    this.beginFailures.delete(key);
    const failed: FleetFailure[] = [];
    const asked = this.clients.filter((c) => {
      const error = beginFailed.get(c.address);
      if (error) failed.push({ host: c.address, phase: "begin", error });
      return !error;
    });
    const settled = await Promise.allSettled(asked.map((c) => c.endWindow(key, options)));
    const perHost: Record<string, CarbonEmissionMeasurement> = {};
    settled.forEach((s, i) => {
      const host = asked[i]!.address;
      if (s.status === "fulfilled") perHost[host] = s.value;
      else failed.push({ host, phase: "end", error: CarbonmonClientError.fromServiceError(s.reason, "EndWindow") });
    });
    return { perHost, total: fleetTotal(perHost), failed };
  }

  /** A readable summary of a FleetMeasurement's failures, one line per host; "" when none failed. */
  static describeFailures(result: { failed: FleetFailure[] }): string {
    return result.failed
      .map((f) => `${f.host} (${f.phase}): ${f.error.codeName}: ${f.error.details}${f.error.hint ? ` (hint: ${f.error.hint})` : ""}`)
      .join("\n");
  }

  /** Closes the clients this monitor created from addresses. */
  close(): void {
    for (const c of this.owned) c.close();
  }
}
