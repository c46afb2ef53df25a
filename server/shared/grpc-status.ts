/**
 * The only place that maps AppError codes to gRPC statuses, and the wrappers that every handler goes
 * through so that no handler contains a switch over error codes.
 */
import { Metadata, status, type sendUnaryData, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { AppError, Code } from "./errors.js";
import type { Logger } from "./log.js";

const STATUS: Record<Code, status> = {
  [Code.InvalidArgument]: status.INVALID_ARGUMENT,
  [Code.NotFound]: status.NOT_FOUND,
  [Code.AlreadyExists]: status.ALREADY_EXISTS,
  [Code.ResourceExhausted]: status.RESOURCE_EXHAUSTED,
  [Code.FailedPrecondition]: status.FAILED_PRECONDITION,
  [Code.OutOfRange]: status.OUT_OF_RANGE,
  [Code.PermissionDenied]: status.PERMISSION_DENIED,
  [Code.Unauthenticated]: status.UNAUTHENTICATED,
  [Code.Unavailable]: status.UNAVAILABLE,
  [Code.DeadlineExceeded]: status.DEADLINE_EXCEEDED,
  [Code.Cancelled]: status.CANCELLED,
  [Code.Unimplemented]: status.UNIMPLEMENTED,
  [Code.Internal]: status.INTERNAL,
};

export function grpcStatusOf(code: Code): status {
  return STATUS[code];
}

/**
 * The most characters of a message or hint sent in a status. Messages may quote what a request sent (a
 * key, a value); a status is a trailer, and C-core clients refuse trailers over 8 KB with RESOURCE_EXHAUSTED
 * instead of the real status, so whatever a message quotes, it is cut here.
 */
export const MAX_STATUS_CHARS = 1024;

function bounded(text: string): string {
  if (text.length <= MAX_STATUS_CHARS) return text;
  return `${text.slice(0, MAX_STATUS_CHARS)}… (${text.length - MAX_STATUS_CHARS} more characters)`;
}

/** Turns any thrown value into a gRPC error. Unexpected errors are logged and hidden behind INTERNAL. */
export function toServiceError(err: unknown, log?: Logger): Partial<ServiceError> {
  const appError = AppError.from(err);
  if (!(err instanceof AppError)) log?.error({ err }, "unexpected error in handler");
  const metadata = new Metadata();
  if (appError.hint) metadata.set("carbonmon-hint", bounded(appError.hint));
  const details = bounded(err instanceof AppError ? appError.detail : "internal error (see the server's log)");
  return { code: STATUS[appError.code], details, metadata };
}

/**
 * Adapts a function to a grpc-js unary handler. A handler that answers at once (a value, not a promise)
 * is answered in the same turn, with no promise in between; a thrown error or a rejection becomes a status.
 */
export function unary<Req, Res>(
  fn: (request: Req, call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
  log?: Logger,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    let result: Res | Promise<Res>;
    try {
      result = fn(call.request, call);
    } catch (err) {
      callback(toServiceError(err, log));
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (response) => callback(null, response),
        (err: unknown) => callback(toServiceError(err, log)),
      );
    } else callback(null, result);
  };
}
