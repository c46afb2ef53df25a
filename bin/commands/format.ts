/** Human-readable text for measurements, hosts and windows. */
import {
  CarbonStatus,
  DeviceDomain,
  DeviceStatus,
  RaplZoneKind,
  type GetHostResponse,
  type Measurement,
  type WindowInfo,
} from "../../proto/gen/carbonmon/agent/v1/agent.js";

export const SIMULATED_BANNER = "SIMULATED GPU — these numbers are not measurements";

/** Prefixes every line with [SIMULATED] when `simulated`. */
export function mark(text: string, simulated: boolean): string {
  if (!simulated) return text;
  return text
    .split("\n")
    .map((l) => (l === "" ? l : `[SIMULATED] ${l}`))
    .join("\n");
}

const table = (rows: string[][]): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
};

const num = (x: number | undefined, digits: number): string => (x === undefined ? "-" : x.toFixed(digits));
const enumName = (name: string | undefined, prefix: string): string => (name ?? "UNKNOWN").replace(prefix, "").toLowerCase();

type Domain = "gpu" | "cpu" | "dram";
const ENERGY: Record<Domain, [keyof Measurement, keyof Measurement, keyof Measurement]> = {
  gpu: ["gpuEnergyJ", "gpuEnergyUncertaintyJ", "gpuCarbonG"],
  cpu: ["cpuEnergyJ", "cpuEnergyUncertaintyJ", "cpuCarbonG"],
  dram: ["dramEnergyJ", "dramEnergyUncertaintyJ", "dramCarbonG"],
};

/** A window's result as a table: one row per device, then the total; carbon or why there is none. */
export function measurementText(m: Measurement): string {
  const carbon = m.carbonStatus === CarbonStatus.CARBON_STATUS_FINAL || m.carbonStatus === CarbonStatus.CARBON_STATUS_PROVISIONAL;
  const rows = [["device", "energy (J)", "± (J)", ...(carbon ? ["carbon (gCO2eq)"] : [])]];
  let uncertainty = 0;
  for (const domain of ["gpu", "cpu", "dram"] as Domain[]) {
    const [e, u, c] = ENERGY[domain].map((k) => m[k] as Record<number, number>);
    for (const [index, joules] of Object.entries(e!)) {
      const du = u![Number(index)];
      uncertainty += du ?? 0;
      rows.push([`${domain}:${index}`, num(joules, 2), num(du, 2), ...(carbon ? [num(c![Number(index)], 4)] : [])]);
    }
  }
  rows.push(["total", num(m.totalEnergyJ, 2), num(uncertainty, 2), ...(carbon ? [num(m.totalCarbonG, 4)] : [])]);
  const status = enumName(CarbonStatus[m.carbonStatus], "CARBON_STATUS_");
  const lines = [
    `window ${m.key}: ${m.timeS.toFixed(3)} s`,
    table(rows),
    `carbon: ${status}${m.carbonStatusReason ? ` (${m.carbonStatusReason})` : ""}`,
  ];
  for (const d of m.missingDevices) lines.push(`missing: ${enumName(DeviceDomain[d.domain], "DEVICE_DOMAIN_")}:${d.index}: ${d.reason}`);
  if (m.cpuUnavailableReason) lines.push(`cpu: ${m.cpuUnavailableReason}`);
  if (m.dramUnavailableReason && m.dramUnavailableReason !== m.cpuUnavailableReason) lines.push(`dram: ${m.dramUnavailableReason}`);
  return mark(`${lines.join("\n")}\n`, m.simulated);
}

const seconds = (d: { seconds: bigint | number; nanos: number } | undefined): string =>
  d === undefined ? "-" : `${Number(d.seconds) * 1000 + d.nanos / 1e6} ms`;

/** GetHost as text. */
export function hostText(h: GetHostResponse): string {
  const simulated = h.gpus.some((g) => g.simulated);
  const rate = `sampling every ${seconds(h.samplingPeriod)}, every ${seconds(h.idleSamplingPeriod)} when idle (${h.samplingActive ? "active now" : "idle now"})`;
  const lines = [`host ${h.hostname} (agent ${h.agentVersion}), ${rate}`];
  lines.push(
    `location ${h.location || "-"}, intensity service ${h.intensityAddr || "- (carbon disabled)"}, open windows ${h.openWindows}/${h.maxOpenWindows}`,
  );
  for (const b of h.backends) {
    const why = [b.version, b.reason, b.hint && `hint: ${b.hint}`].filter(Boolean).join("; ");
    lines.push(`backend ${b.name}: ${enumName(DeviceStatus[b.status], "DEVICE_STATUS_")}${why ? ` (${why})` : ""}`);
  }
  // up/down as carbonmon_device_up reports it; the reason is what the agent logged when the device went down.
  const up = (s: DeviceStatus): string => (s === DeviceStatus.DEVICE_STATUS_OK ? "up" : "down");
  const gpus = h.gpus.map((g) => [
    `gpu:${g.index}`,
    g.name,
    g.uuid,
    `${g.powerLimitW} W`,
    up(g.status),
    enumName(DeviceStatus[g.status], "DEVICE_STATUS_"),
    g.simulated ? "SIMULATED" : g.statusReason,
  ]);
  const zones = h.raplZones.map((z) => [
    `rapl:${z.index}`,
    `${enumName(RaplZoneKind[z.kind], "RAPL_ZONE_KIND_")} ${z.name}`,
    z.path,
    "",
    up(z.status),
    enumName(DeviceStatus[z.status], "DEVICE_STATUS_"),
    z.statusReason,
  ]);
  if (gpus.length + zones.length > 0) lines.push(table([["device", "name", "id", "limit", "up", "status", "reason"], ...gpus, ...zones]));
  else lines.push("no devices");
  const down = [...h.gpus, ...h.raplZones].filter((d) => d.status !== DeviceStatus.DEVICE_STATUS_OK).length;
  if (down > 0) lines.push(`${down} device${down === 1 ? "" : "s"} down`);
  return mark(`${lines.join("\n")}\n`, simulated);
}

/** ListWindows as a table. */
export function windowsText(windows: WindowInfo[]): string {
  if (windows.length === 0) return "no windows\n";
  const rows = windows.map((w) => [
    w.key,
    w.beginTime?.toISOString() ?? "-",
    w.ended ? (w.endTime?.toISOString() ?? "ended") : "open",
    w.gpuIndices.join(",") || "-",
    w.cpuIndices.join(",") || "-",
    Object.entries(w.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(",") || "-",
  ]);
  return `${table([["key", "begin", "end", "gpus", "cpus", "labels"], ...rows])}\n`;
}
