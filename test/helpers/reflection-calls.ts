/**
 * One call of every RPC of both services, for the strict reflection tests (TypeScript in the unit tier,
 * Python in the e2e tier): the method, its request in canonical protobuf JSON, and a check of the answer
 * (canonical JSON too; an error answer is {code, details}). The agent's calls run in order on one agent
 * with one fake GPU at 300 W; the intensity calls on the static provider with DE=300.
 */
import type { JsonValue } from "@bufbuild/protobuf";

export type ReflectionCall = [method: string, request: JsonValue, check: (res: any) => boolean];

export const AGENT = "carbonmon.agent.v1.EnergyMonitor";
export const INTENSITY = "carbonmon.intensity.v1.CarbonIntensity";
export const DE = { location: { zone: "DE" } };
const hourAgo = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000).toISOString();
const hourStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString();

/** Each method: its request (canonical JSON) and a check of its answer. Order matters for the agent. */
export const AGENT_CALLS: readonly ReflectionCall[] = [
  ["GetHost", {}, (r) => r.gpus.length === 1 && typeof r.agentVersion === "string"],
  [
    "BeginWindow",
    { key: "reflect/1", labels: { job: "42" }, gpuIndices: [0] },
    (r) => r.key === "reflect/1" && typeof r.beginTime === "string",
  ],
  ["GetWindow", { key: "reflect/1" }, (r) => r.key === "reflect/1" && r.ended !== true],
  ["ListWindows", {}, (r) => r.windows.some((w: any) => w.key === "reflect/1" && w.labels.job === "42")],
  ["EndWindow", { key: "reflect/1" }, (r) => r.ended === true && r.gpuEnergyJ["0"] > 0],
  ["BeginWindow", { key: "reflect/2" }, (r) => r.key === "reflect/2"],
  ["CancelWindow", { key: "reflect/2" }, (r) => r.key === "reflect/2"],
  ["WatchPower", { period: "0.2s" }, (r) => r.gpuPowerW["0"] > 0],
];

export const INTENSITY_CALLS: readonly ReflectionCall[] = [
  ["GetCurrentIntensity", DE, (r) => r.zone === "DE" && r.gPerKwh === 300],
  ["GetRecentIntensity", DE, (r) => r.points.length > 0 && r.points.every((p: any) => p.gPerKwh === 300)],
  ["GetIntensityHistory", { ...DE, start: hourAgo, end: hourStart }, (r) => r.points.length >= 1],
  // The static provider has no forecasts: the decoded request reaches the service, which names the zone.
  ["GetForecast", { ...DE, horizon: "3600s" }, (r) => (r.code === 5 || r.code === "NOT_FOUND") && /forecasts zone DE/.test(r.details)],
  [
    "ComputeEmissions",
    { ...DE, segments: [{ start: hourAgo, end: hourStart, energyJ: 3_600_000, device: "gpu:0" }] },
    (r) => Math.abs(r.totalCarbonG - 300) < 1e-9 && r.carbonG["gpu:0"] === 300,
  ],
  ["ResolveLocation", { zone: "DE" }, (r) => r.zone === "DE"],
  ["ListProviders", {}, (r) => r.providers.some((p: any) => p.name === "static")],
  ["WatchIntensity", DE, (r) => r.gPerKwh === 300],
  // The static provider gives a flat series (not a forecast): every start is as good, at 300 g/kWh.
  [
    "GetBestWindow",
    { locations: [{ zone: "DE" }], duration: "3600s" },
    (r) => r.candidates.length >= 1 && r.candidates[0].meanGPerKwh === 300,
  ],
];
