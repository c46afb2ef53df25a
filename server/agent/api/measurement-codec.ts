/**
 * A window's result (windows/result.ts, plain data) as the contract's Measurement, and back. An ended
 * window is encoded once: the store journals the bytes before EndWindow is answered, and the service
 * sends those very bytes (its serializer passes them through), so a result costs one encoding. Stored
 * results are read back (decode) only to be repriced.
 */
import {
  ApproximationKind,
  CarbonStatus,
  DeviceDomain,
  Measurement,
  type Approximation,
  type CarbonPeriod,
} from "../../../proto/gen/carbonmon/agent/v1/agent.js";
import {
  emissionFactorTypeFromJSON,
  intensitySourceFromJSON,
  signalTypeFromJSON,
  type IntensityPoint,
} from "../../../proto/gen/carbonmon/intensity/v1/intensity.js";
import type { CarbonState, IntensityInfo, PricedPeriod } from "../carbon/outcome.js";
import type { Domain } from "../devices/energy-source.js";
import type { DeviceFigures, ResultCodec, WindowResult } from "../windows/result.js";
import { intensityInfo } from "./intensity-client.js";
import { encodeMeasurement, readEdgesMs } from "./measurement-wire.js";

const DOMAIN: Record<Domain, DeviceDomain> = {
  gpu: DeviceDomain.DEVICE_DOMAIN_GPU,
  cpu: DeviceDomain.DEVICE_DOMAIN_CPU,
  dram: DeviceDomain.DEVICE_DOMAIN_DRAM,
};
const DOMAIN_OF: Partial<Record<DeviceDomain, Domain>> = {
  [DeviceDomain.DEVICE_DOMAIN_GPU]: "gpu",
  [DeviceDomain.DEVICE_DOMAIN_CPU]: "cpu",
  [DeviceDomain.DEVICE_DOMAIN_DRAM]: "dram",
};
const STATUS: Record<CarbonState, CarbonStatus> = {
  final: CarbonStatus.CARBON_STATUS_FINAL,
  provisional: CarbonStatus.CARBON_STATUS_PROVISIONAL,
  pending: CarbonStatus.CARBON_STATUS_PENDING,
  disabled: CarbonStatus.CARBON_STATUS_DISABLED,
};
const STATE_OF: Partial<Record<CarbonStatus, CarbonState>> = Object.fromEntries(Object.entries(STATUS).map(([k, v]) => [v, k]));
const MISSING_HINT = "see GetHost for the device's state";
const WRAPS_DETAIL = /^(\d+) counter wrap/;

/**
 * The approximations behind a device's figure. The kind says what was approximated (agent.proto documents
 * each); `detail` carries only what the kind does not (how many wraps were inferred), so a window over
 * 8 GPUs does not repeat the same sentences in every response, stored result and journal record.
 */
function approximations(f: DeviceFigures, out: Approximation[]): void {
  // No closure here: it runs per device per EndWindow.
  const domain = DOMAIN[f.domain];
  const index = f.index;
  if (f.shortWindow) out.push({ domain, index, kind: ApproximationKind.APPROXIMATION_KIND_SHORT_WINDOW, detail: "" });
  if (f.powerIntegration) out.push({ domain, index, kind: ApproximationKind.APPROXIMATION_KIND_POWER_INTEGRATION, detail: "" });
  if (f.counterReset) out.push({ domain, index, kind: ApproximationKind.APPROXIMATION_KIND_COUNTER_RESET, detail: "" });
  if (f.wrapsInferred > 0) {
    const detail = `${f.wrapsInferred} counter wrap(s) assumed while the agent was down`;
    out.push({ domain, index, kind: ApproximationKind.APPROXIMATION_KIND_WRAP_INFERRED, detail });
  }
  if (f.extrapolated) out.push({ domain, index, kind: ApproximationKind.APPROXIMATION_KIND_EDGE_EXTRAPOLATED, detail: "" });
}

const date = (ms: number | undefined): Date | undefined => (ms === undefined ? undefined : new Date(ms));

function intensityPoint(i: IntensityInfo): IntensityPoint {
  return {
    zone: i.zone,
    gPerKwh: i.gPerKwh,
    validFrom: date(i.validFromMs),
    validTo: date(i.validToMs),
    isEstimated: i.isEstimated,
    estimationMethod: i.estimationMethod,
    provider: i.provider,
    signal: signalTypeFromJSON(i.signal),
    emissionFactor: emissionFactorTypeFromJSON(i.emissionFactor),
    source: intensitySourceFromJSON(i.source),
    fetchedAt: date(i.fetchedAtMs),
    sourceUpdatedAt: date(i.sourceUpdatedAtMs),
    attempts: i.attempts.map((a) => ({ ...a })),
    cached: i.cached,
  };
}

const carbonPeriod = (p: PricedPeriod): CarbonPeriod => ({
  ...(p.intensity ? { intensity: intensityPoint(p.intensity) } : {}),
  energyJ: p.energyJ,
  carbonG: p.carbonG,
});

/** The result as the contract's Measurement. */
export function toMeasurement(r: WindowResult): Measurement {
  // Every field spelt out (the compiler checks none is missing) rather than Measurement.fromPartial, which
  // copies each map through arrays: this runs for every EndWindow.
  const m: Measurement = {
    key: r.key,
    beginTime: new Date(r.beginMs),
    endTime: new Date(r.endMs),
    timeS: r.timeS,
    gpuEnergyJ: {},
    cpuEnergyJ: {},
    dramEnergyJ: {},
    gpuCarbonG: {},
    cpuCarbonG: {},
    dramCarbonG: {},
    gpuEnergyUncertaintyJ: {},
    cpuEnergyUncertaintyJ: {},
    dramEnergyUncertaintyJ: {},
    approximations: [],
    missingDevices: [],
    cpuUnavailableReason: r.cpuUnavailableReason,
    dramUnavailableReason: r.dramUnavailableReason,
    carbonStatus: STATUS[r.carbon.status],
    carbonStatusReason: r.carbon.reason,
    carbonPeriods: r.carbon.periods.map(carbonPeriod),
    labels: { ...r.labels },
    ended: r.ended,
    gpuUuids: { ...r.gpuUuids },
    totalEnergyJ: r.totalEnergyJ,
    totalCarbonG: r.carbon.totalG,
    simulated: r.simulated,
  };
  const energy = { gpu: m.gpuEnergyJ, cpu: m.cpuEnergyJ, dram: m.dramEnergyJ };
  const uncertainty = { gpu: m.gpuEnergyUncertaintyJ, cpu: m.cpuEnergyUncertaintyJ, dram: m.dramEnergyUncertaintyJ };
  const carbon = { gpu: m.gpuCarbonG, cpu: m.cpuCarbonG, dram: m.dramCarbonG };
  for (const d of r.missing) m.missingDevices.push({ domain: DOMAIN[d.domain], index: d.index, reason: d.reason, hint: MISSING_HINT });
  for (const f of r.devices) {
    energy[f.domain][f.index] = f.energyJ;
    uncertainty[f.domain][f.index] = f.uncertaintyJ;
    approximations(f, m.approximations);
  }
  for (const [device, grams] of Object.entries(r.carbon.carbonG)) {
    const [domain, index] = device.split(":") as [Domain, string];
    carbon[domain][Number(index)] = grams;
  }
  return m;
}

/** A Measurement (stored by this or an earlier agent) as a result. */
export function fromMeasurement(m: Measurement): WindowResult {
  const devices: DeviceFigures[] = [];
  const flags = new Map<string, DeviceFigures>();
  const maps = {
    gpu: [m.gpuEnergyJ, m.gpuEnergyUncertaintyJ],
    cpu: [m.cpuEnergyJ, m.cpuEnergyUncertaintyJ],
    dram: [m.dramEnergyJ, m.dramEnergyUncertaintyJ],
  } as const;
  for (const domain of ["gpu", "cpu", "dram"] as const) {
    const [energy, uncertainty] = maps[domain];
    for (const [index, energyJ] of Object.entries(energy)) {
      const f: DeviceFigures = {
        domain,
        index: Number(index),
        energyJ,
        uncertaintyJ: uncertainty[Number(index)] ?? 0,
        shortWindow: false,
        powerIntegration: false,
        counterReset: false,
        extrapolated: false,
        wrapsInferred: 0,
      };
      devices.push(f);
      flags.set(`${domain}:${index}`, f);
    }
  }
  for (const a of m.approximations) {
    const f = flags.get(`${DOMAIN_OF[a.domain]}:${a.index}`);
    if (!f) continue;
    if (a.kind === ApproximationKind.APPROXIMATION_KIND_SHORT_WINDOW) f.shortWindow = true;
    else if (a.kind === ApproximationKind.APPROXIMATION_KIND_POWER_INTEGRATION) f.powerIntegration = true;
    else if (a.kind === ApproximationKind.APPROXIMATION_KIND_COUNTER_RESET) f.counterReset = true;
    else if (a.kind === ApproximationKind.APPROXIMATION_KIND_EDGE_EXTRAPOLATED) f.extrapolated = true;
    else if (a.kind === ApproximationKind.APPROXIMATION_KIND_WRAP_INFERRED) f.wrapsInferred = Number(WRAPS_DETAIL.exec(a.detail)?.[1] ?? 1);
  }
  const carbonG: Record<string, number> = {};
  const grams = { gpu: m.gpuCarbonG, cpu: m.cpuCarbonG, dram: m.dramCarbonG };
  for (const domain of ["gpu", "cpu", "dram"] as const)
    for (const [index, g] of Object.entries(grams[domain])) carbonG[`${domain}:${index}`] = g;
  const beginMs = m.beginTime?.getTime() ?? 0;
  return {
    key: m.key,
    beginMs,
    endMs: m.endTime?.getTime() ?? beginMs,
    timeS: m.timeS,
    ended: m.ended,
    labels: { ...m.labels },
    devices,
    missing: m.missingDevices.flatMap((d) => {
      const domain = DOMAIN_OF[d.domain];
      return domain ? [{ domain, index: d.index, reason: d.reason }] : [];
    }),
    gpuUuids: { ...m.gpuUuids },
    cpuUnavailableReason: m.cpuUnavailableReason,
    dramUnavailableReason: m.dramUnavailableReason,
    totalEnergyJ: m.totalEnergyJ,
    simulated: m.simulated,
    carbon: {
      status: STATE_OF[m.carbonStatus] ?? "pending",
      reason: m.carbonStatusReason,
      carbonG,
      periods: m.carbonPeriods.map((p) => ({
        intensity: p.intensity ? intensityInfo(p.intensity) : undefined,
        energyJ: p.energyJ,
        carbonG: p.carbonG,
      })),
      totalG: m.totalCarbonG,
    },
  };
}

/**
 * Results for the store and the wire: Measurement bytes (protobuf), encoded once. begin_time and end_time
 * carry the edges at the precision they were measured (nanoseconds), as time_s does.
 */
export const measurementCodec: ResultCodec = {
  encode: (r) => encodeMeasurement(toMeasurement(r), { beginMs: r.beginMs, endMs: r.endMs }),
  /** Protobuf bytes, or the JSON that agents before the journal stored. */
  decode: (stored) => {
    if (typeof stored === "string") return fromMeasurement(Measurement.fromJSON(JSON.parse(stored)));
    const result = fromMeasurement(Measurement.decode(stored));
    const { beginMs, endMs } = readEdgesMs(stored);
    return { ...result, beginMs: beginMs ?? result.beginMs, endMs: endMs ?? result.endMs };
  },
};

/** The gRPC serializer for EndWindow and GetWindow: handlers answer with the encoded bytes themselves. */
export function serializeEncoded(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
