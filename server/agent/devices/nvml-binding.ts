/**
 * libnvidia-ml.so.1 through koffi: the few NVML entry points carbonmon uses, with out-parameters as typed
 * arrays (the cheapest way koffi passes pointers). Every call returns the raw nvmlReturn_t; callers turn
 * failures into AppErrors through nvml-errors.ts. Energy reads take ~4 ms: use this in a worker only.
 */
import koffi from "koffi";
import { NVML_SUCCESS, nvmlError } from "./nvml-errors.js";

export const FIELD_TOTAL_ENERGY = 83;
export const FIELD_POWER_AVERAGE = 185;
export const FIELD_POWER_INSTANT = 186;
export const SCOPE_GPU = 0;
export const SCOPE_MODULE = 1;
export const SCOPE_MEMORY = 2;

/** nvmlFieldValue_t: 40 bytes, 8-aligned. */
const FIELD_SIZE = 40;

export interface FieldRequest {
  fieldId: number;
  scopeId: number;
}

export interface FieldResult {
  ret: number;
  /** Driver read time, µs since the epoch. */
  timestampUs: number;
  value: number;
}

export type Handle = unknown;

export interface Nvml {
  init(): number;
  shutdown(): number;
  errorString(ret: number): string;
  driverVersion(): string;
  count(): number;
  handle(index: number): Handle;
  name(dev: Handle): string;
  uuid(dev: Handle): string;
  powerLimitMw(dev: Handle): number;
  migEnabled(dev: Handle): boolean;
  /** [ret, mJ] */
  totalEnergyMj(dev: Handle): [number, number];
  /** [ret, mW] */
  powerUsageMw(dev: Handle): [number, number];
  /** [ret, °C] */
  temperatureC(dev: Handle): [number, number];
  fieldValues(dev: Handle, requests: readonly FieldRequest[]): { ret: number; results: FieldResult[] };
}

/** Loads the library; throws an Error naming the path when it cannot be loaded. */
export function openNvml(libraryPath: string): Nvml {
  const lib = koffi.load(libraryPath);
  const f = {
    init: lib.func("int nvmlInit_v2()"),
    shutdown: lib.func("int nvmlShutdown()"),
    errorString: lib.func("const char *nvmlErrorString(int result)"),
    driverVersion: lib.func("int nvmlSystemGetDriverVersion(_Out_ uint8_t *version, uint32_t length)"),
    count: lib.func("int nvmlDeviceGetCount_v2(uint32_t *count)"),
    handle: lib.func("int nvmlDeviceGetHandleByIndex_v2(uint32_t index, _Out_ void **device)"),
    name: lib.func("int nvmlDeviceGetName(void *device, _Out_ uint8_t *name, uint32_t length)"),
    uuid: lib.func("int nvmlDeviceGetUUID(void *device, _Out_ uint8_t *uuid, uint32_t length)"),
    powerLimit: lib.func("int nvmlDeviceGetPowerManagementLimit(void *device, uint32_t *limit)"),
    migMode: lib.func("int nvmlDeviceGetMigMode(void *device, uint32_t *current, uint32_t *pending)"),
    energy: lib.func("int nvmlDeviceGetTotalEnergyConsumption(void *device, uint64_t *energy)"),
    power: lib.func("int nvmlDeviceGetPowerUsage(void *device, uint32_t *power)"),
    temperature: lib.func("int nvmlDeviceGetTemperature(void *device, int sensor, uint32_t *temp)"),
    fields: lib.func("int nvmlDeviceGetFieldValues(void *device, int count, uint8_t *values)"),
  };
  const u32 = new Uint32Array(2);
  const u64 = new BigUint64Array(1);
  const text = new Uint8Array(96);

  const check = (call: string, ret: number): void => {
    if (ret !== NVML_SUCCESS) throw nvmlError(call, ret, f.errorString(ret) as string);
  };
  const readText = (call: string, fn: (buf: Uint8Array, len: number) => number): string => {
    text.fill(0);
    check(call, fn(text, text.length));
    const end = text.indexOf(0);
    return new TextDecoder().decode(text.subarray(0, end < 0 ? text.length : end));
  };

  return {
    init: () => f.init() as number,
    shutdown: () => f.shutdown() as number,
    errorString: (ret) => f.errorString(ret) as string,
    driverVersion: () => readText("nvmlSystemGetDriverVersion", (b, n) => f.driverVersion(b, Math.min(n, 80)) as number),
    count: () => {
      check("nvmlDeviceGetCount_v2", f.count(u32) as number);
      return u32[0]!;
    },
    handle: (index) => {
      const out: unknown[] = [null];
      check("nvmlDeviceGetHandleByIndex_v2", f.handle(index, out) as number);
      return out[0];
    },
    name: (dev) => readText("nvmlDeviceGetName", (b, n) => f.name(dev, b, n) as number),
    uuid: (dev) => readText("nvmlDeviceGetUUID", (b, n) => f.uuid(dev, b, n) as number),
    powerLimitMw: (dev) => {
      check("nvmlDeviceGetPowerManagementLimit", f.powerLimit(dev, u32) as number);
      return u32[0]!;
    },
    migEnabled: (dev) => {
      const cur = new Uint32Array(1);
      const ret = f.migMode(dev, cur, u32) as number;
      return ret === NVML_SUCCESS && cur[0] === 1;
    },
    totalEnergyMj: (dev) => {
      const ret = f.energy(dev, u64) as number;
      return [ret, Number(u64[0])];
    },
    powerUsageMw: (dev) => {
      const ret = f.power(dev, u32) as number;
      return [ret, u32[0]!];
    },
    temperatureC: (dev) => {
      const ret = f.temperature(dev, 0, u32) as number;
      return [ret, u32[0]!];
    },
    fieldValues: (dev, requests) => {
      const buf = new Uint8Array(FIELD_SIZE * requests.length);
      const view = new DataView(buf.buffer);
      requests.forEach((r, i) => {
        view.setUint32(i * FIELD_SIZE, r.fieldId, true);
        view.setUint32(i * FIELD_SIZE + 4, r.scopeId, true);
      });
      const ret = f.fields(dev, requests.length, buf) as number;
      return { ret, results: requests.map((_, i) => decodeField(view, i * FIELD_SIZE)) };
    },
  };
}

function decodeField(view: DataView, at: number): FieldResult {
  const ret = view.getInt32(at + 28, true);
  const timestampUs = Number(view.getBigInt64(at + 8, true));
  return { ret, timestampUs, value: ret === NVML_SUCCESS ? decodeValue(view, at + 32, view.getInt32(at + 24, true)) : NaN };
}

/** The value union by nvmlValueType_t: 0 double, 1 uint, 2 ulong, 3 ulonglong, 4 sllong, 5 sint. */
function decodeValue(view: DataView, at: number, valueType: number): number {
  switch (valueType) {
    case 0:
      return view.getFloat64(at, true);
    case 1:
      return view.getUint32(at, true);
    case 2:
    case 3:
      return Number(view.getBigUint64(at, true));
    case 4:
      return Number(view.getBigInt64(at, true));
    case 5:
      return view.getInt32(at, true);
    default:
      return NaN;
  }
}
