/**
 * `--csv FILE`: one row per measurement appended to FILE, in the spirit of CodeCarbon's emissions.csv (a
 * header when the file is new or empty, then a row per run, so a spreadsheet or pandas reads the history),
 * with carbonmon's units in the column names. Fields are quoted as RFC 4180 says.
 */
import { appendFileSync, existsSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { CarbonStatus, type Measurement } from "../../proto/gen/carbonmon/agent/v1/agent.js";

export const CSV_COLUMNS = [
  "timestamp",
  "key",
  "hostname",
  "begin_time",
  "end_time",
  "duration_s",
  "gpu_energy_j",
  "cpu_energy_j",
  "dram_energy_j",
  "energy_j",
  "energy_uncertainty_j",
  "gpu_carbon_g",
  "cpu_carbon_g",
  "dram_carbon_g",
  "carbon_g",
  "carbon_status",
  "gpus",
  "labels",
  "command",
  "exit_code",
] as const;

export interface CsvContext {
  command?: string;
  exitCode?: number;
}

const sum = (m: Record<number, number>): number => Object.values(m).reduce((a, b) => a + b, 0);

function quote(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** The row's values, by column. Carbon columns are empty unless the grams are final or provisional. */
export function csvRow(m: Measurement, context: CsvContext = {}, now = new Date()): string[] {
  const priced = m.carbonStatus === CarbonStatus.CARBON_STATUS_FINAL || m.carbonStatus === CarbonStatus.CARBON_STATUS_PROVISIONAL;
  const uncertainty = sum(m.gpuEnergyUncertaintyJ) + sum(m.cpuEnergyUncertaintyJ) + sum(m.dramEnergyUncertaintyJ);
  const grams = (x: number): string => (priced ? String(x) : "");
  const values: Record<(typeof CSV_COLUMNS)[number], string> = {
    timestamp: now.toISOString(),
    key: m.key,
    hostname: hostname(),
    begin_time: m.beginTime?.toISOString() ?? "",
    end_time: m.endTime?.toISOString() ?? "",
    duration_s: String(m.timeS),
    gpu_energy_j: String(sum(m.gpuEnergyJ)),
    cpu_energy_j: String(sum(m.cpuEnergyJ)),
    dram_energy_j: String(sum(m.dramEnergyJ)),
    energy_j: String(m.totalEnergyJ),
    energy_uncertainty_j: String(uncertainty),
    gpu_carbon_g: grams(sum(m.gpuCarbonG)),
    cpu_carbon_g: grams(sum(m.cpuCarbonG)),
    dram_carbon_g: grams(sum(m.dramCarbonG)),
    carbon_g: grams(m.totalCarbonG),
    carbon_status: (CarbonStatus[m.carbonStatus] ?? "").replace("CARBON_STATUS_", ""),
    gpus: Object.keys(m.gpuEnergyJ).join(" "),
    labels: Object.entries(m.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(" "),
    command: context.command ?? "",
    exit_code: context.exitCode === undefined ? "" : String(context.exitCode),
  };
  return CSV_COLUMNS.map((c) => values[c]);
}

/** Appends one row (and the header first when the file is new or empty). */
export function appendCsv(file: string, m: Measurement, context: CsvContext = {}): void {
  const fresh = !existsSync(file) || statSync(file).size === 0;
  const line = (cells: readonly string[]): string => `${cells.map(quote).join(",")}\n`;
  appendFileSync(file, (fresh ? line(CSV_COLUMNS) : "") + line(csvRow(m, context)));
}
