/**
 * The one error type of carbonmon, with a closed set of codes. Adapters translate vendor errors (nvmlReturn,
 * HTTP statuses, errno) into it once; grpc-status.ts is the only place that turns codes into gRPC statuses.
 */
export const Code = {
  InvalidArgument: "INVALID_ARGUMENT",
  NotFound: "NOT_FOUND",
  AlreadyExists: "ALREADY_EXISTS",
  ResourceExhausted: "RESOURCE_EXHAUSTED",
  FailedPrecondition: "FAILED_PRECONDITION",
  OutOfRange: "OUT_OF_RANGE",
  PermissionDenied: "PERMISSION_DENIED",
  Unauthenticated: "UNAUTHENTICATED",
  Unavailable: "UNAVAILABLE",
  DeadlineExceeded: "DEADLINE_EXCEEDED",
  Cancelled: "CANCELLED",
  Unimplemented: "UNIMPLEMENTED",
  Internal: "INTERNAL",
} as const;
export type Code = (typeof Code)[keyof typeof Code];

export interface AppErrorOptions {
  /** What the caller can do about it. */
  hint?: string;
  cause?: unknown;
}

export class AppError extends Error {
  readonly code: Code;
  readonly hint: string | undefined;

  constructor(code: Code, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.hint = options.hint;
  }

  /** The message with its hint, as shown to callers. */
  get detail(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }

  static from(err: unknown): AppError {
    if (err instanceof AppError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new AppError(Code.Internal, message, { cause: err });
  }
}
