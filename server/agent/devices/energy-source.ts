/**
 * The interface every energy backend implements (NVML for GPUs, RAPL for CPU packages and DRAM, a
 * simulated GPU for demos). A backend probes its hardware once, reports what it found and why anything
 * is absent, and pushes readings to the sampler; it never decides what a window's energy is.
 */

/** Which energy map of a Measurement a device feeds. */
export type Domain = "gpu" | "cpu" | "dram";

export type DeviceStatus = "ok" | "unavailable" | "lost";

/** The state of a backend as GetHost reports it. */
export interface BackendState {
  name: string;
  status: DeviceStatus;
  /** Why it is not ok. */
  reason?: string;
  /** What to do about it. */
  hint?: string;
  /** E.g. the NVIDIA driver version. */
  version?: string;
}

export type RaplKind = "package" | "dram" | "core" | "uncore" | "psys";

/** One device a backend can read. */
export interface Device {
  /** Unique across backends: "gpu:<nvml index>", "cpu:<package>", "dram:<package>". */
  id: string;
  domain: Domain;
  /** NVML index for GPUs; package index N for CPU and DRAM. */
  index: number;
  name: string;
  /** False: energy must be integrated from power (pre-Volta GPUs). */
  hasEnergyCounter: boolean;
  /** The raw counter wraps back to 0 after this many joules (RAPL max_energy_range_uj); undefined: never. */
  counterRangeJ?: number;
  status: DeviceStatus;
  statusReason?: string;
  /** GPUs only. */
  uuid?: string;
  powerLimitW?: number;
  /**
   * The most the device can draw, watts (a GPU's power limit; CARBONMON_RAPL_MAX_POWER_W for a RAPL zone);
   * undefined: unknown. An edge past the latest reading is bounded by it.
   */
  maxPowerW?: number;
  migEnabled?: boolean;
  /** A simulated device: its numbers are not measurements. */
  simulated?: boolean;
  /** RAPL only: the zone's path under the powercap root, e.g. "intel-rapl:0/intel-rapl:0:2". */
  path?: string;
}

/** A RAPL zone that is reported but never measured (core, uncore, psys overlap the package). */
export interface InfoZone {
  index: number;
  kind: RaplKind;
  name: string;
  path: string;
  counterRangeJ?: number;
  status: DeviceStatus;
  statusReason?: string;
}

/** One reading of one device. */
export interface Reading {
  deviceId: string;
  /** When the value was valid, on the agent clock (monotonic, epoch-aligned ms; see shared/clock.ts). */
  tMs: number;
  /** Half-width of the interval that holds the true tMs (a counter's update instant is estimated), ms. */
  timeUncertaintyMs?: number;
  /** The raw cumulative counter in joules, as the hardware reports it (wraps and resets included). */
  counterJ?: number;
  /** Instant power, watts. */
  powerW?: number;
  /** Memory power, watts (NVML field 185, MEMORY scope). */
  memoryPowerW?: number;
  temperatureC?: number;
  /** The device failed: it is now lost or unavailable, with the reason. */
  failure?: { status: "lost" | "unavailable"; reason: string };
}

export type ReadingSink = (readings: Reading[]) => void;

export interface EnergySource {
  /** "nvml", "rapl", "simulated". */
  readonly name: string;
  state(): BackendState;
  devices(): readonly Device[];
  /** Zones reported by GetHost but not measured. */
  infoZones?(): readonly InfoZone[];
  /** Starts pushing readings to sink; the first batch comes as soon as possible. */
  start(sink: ReadingSink): void;
  /**
   * Full-rate (true) or idle-rate (false) sampling; a source starts idle. Going active reads every device
   * at once, so that an edge just before it is bracketed as tightly as at full rate (readings carry the
   * instant their value became current); going idle takes effect after the read in progress. Sources
   * without an idle rate leave it out.
   */
  setActive?(active: boolean): void;
  /** Stops reading and releases the hardware (closes files, shuts NVML down). Idempotent. */
  stop(): Promise<void>;
}
