/**
 * The one table from nvmlReturn_t to carbonmon's error codes, with what each means for the device and
 * what an operator can do about it.
 */
import { AppError, Code } from "../../shared/errors.js";

export const NVML_SUCCESS = 0;

/** What to do when libnvidia-ml.so.1 cannot be loaded. */
export const NO_LIBRARY_HINT = "install the NVIDIA driver or set CARBONMON_NVML_LIBRARY to the path of libnvidia-ml.so.1";
export const NVML_ERROR_NOT_SUPPORTED = 3;

interface NvmlErrorInfo {
  name: string;
  code: Code;
  /** The GPU itself is gone until a reset: stop reading it. */
  lost?: boolean;
  hint?: string;
}

const DRIVER_HINT = "install the NVIDIA driver, or run the agent without GPUs (CPU energy is still served)";

export const NVML_ERRORS: Readonly<Record<number, NvmlErrorInfo>> = {
  1: { name: "UNINITIALIZED", code: Code.Internal },
  2: { name: "INVALID_ARGUMENT", code: Code.Internal },
  3: { name: "NOT_SUPPORTED", code: Code.FailedPrecondition },
  4: {
    name: "NO_PERMISSION",
    code: Code.PermissionDenied,
    hint: "run the agent as a user allowed to query the GPU (in a container: the NVIDIA container runtime with --gpus)",
  },
  6: { name: "NOT_FOUND", code: Code.NotFound },
  7: { name: "INSUFFICIENT_SIZE", code: Code.Internal },
  9: { name: "DRIVER_NOT_LOADED", code: Code.Unavailable, hint: DRIVER_HINT },
  10: { name: "TIMEOUT", code: Code.Unavailable },
  12: { name: "LIBRARY_NOT_FOUND", code: Code.Unavailable, hint: DRIVER_HINT },
  13: {
    name: "FUNCTION_NOT_FOUND",
    code: Code.Unavailable,
    hint: "the NVIDIA driver is too old: update it (the _v2 entry points are required)",
  },
  15: {
    name: "GPU_IS_LOST",
    code: Code.Unavailable,
    lost: true,
    hint: "the GPU fell off the bus: check dmesg for Xid errors, then reset the GPU or reboot",
  },
  16: { name: "RESET_REQUIRED", code: Code.Unavailable, lost: true, hint: "reset the GPU (nvidia-smi -r) or reboot" },
  18: {
    name: "LIB_RM_VERSION_MISMATCH",
    code: Code.Unavailable,
    hint: "the NVML library and the kernel driver differ: reboot after a driver update",
  },
  21: { name: "NO_DATA", code: Code.Unavailable },
  27: { name: "NOT_READY", code: Code.Unavailable },
  999: { name: "UNKNOWN", code: Code.Internal },
};

export function nvmlErrorInfo(ret: number): NvmlErrorInfo {
  return NVML_ERRORS[ret] ?? { name: `ERROR_${ret}`, code: Code.Internal };
}

/** An AppError for a failed NVML call: "nvmlDeviceGetName: GPU_IS_LOST (GPU is lost)". */
export function nvmlError(call: string, ret: number, text?: string): AppError {
  const info = nvmlErrorInfo(ret);
  const detail = text && text !== info.name ? ` (${text})` : "";
  return new AppError(info.code, `${call}: ${info.name}${detail}`, info.hint ? { hint: info.hint } : {});
}

export function isLost(ret: number): boolean {
  return nvmlErrorInfo(ret).lost === true;
}
