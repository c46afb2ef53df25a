/** The one error type of the TypeScript client: a gRPC status with its code, name, details and hint. */
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

/** The name of a gRPC status code, e.g. "NOT_FOUND"; "UNKNOWN" for a number that is not one. */
export type GrpcCodeName = keyof typeof status;

export function codeNameOf(code: number): GrpcCodeName {
  const name = (status as unknown as Record<number, string>)[code];
  return (typeof name === "string" ? name : "UNKNOWN") as GrpcCodeName;
}

export class CarbonmonClientError extends Error {
  override readonly name = "CarbonmonClientError";
  /** The gRPC status code (a number of `status` from @grpc/grpc-js). */
  readonly code: number;
  /** Its name: "NOT_FOUND", "ALREADY_EXISTS", … */
  readonly codeName: GrpcCodeName;
  /** The server's message (the status details). */
  readonly details: string;
  /** What to do about it, from the `carbonmon-hint` trailer, when the server sent one. */
  readonly hint: string | undefined;
  /** The response metadata (trailers), when there were any. */
  readonly metadata: Metadata | undefined;

  constructor(code: number, details: string, options: { hint?: string; metadata?: Metadata; method?: string; cause?: unknown } = {}) {
    const codeName = codeNameOf(code);
    const where = options.method ? `${options.method}: ` : "";
    super(
      `${where}${codeName}: ${details}${options.hint ? ` (hint: ${options.hint})` : ""}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.codeName = codeName;
    this.details = details;
    this.hint = options.hint;
    this.metadata = options.metadata;
  }

  /** Wraps a grpc-js ServiceError (or anything thrown) as a CarbonmonClientError; passes one through. */
  static fromServiceError(err: unknown, method?: string): CarbonmonClientError {
    if (err instanceof CarbonmonClientError) return err;
    const e = err as Partial<ServiceError> | undefined;
    if (e && typeof e === "object" && typeof e.code === "number") {
      const metadata = e.metadata instanceof Metadata ? e.metadata : undefined;
      const hintValue = metadata?.get("carbonmon-hint")[0];
      const hint = hintValue === undefined ? undefined : String(hintValue);
      const details = typeof e.details === "string" ? e.details : (e.message ?? "");
      return new CarbonmonClientError(e.code, details, { hint, metadata, method, cause: err });
    }
    const message = err instanceof Error ? err.message : String(err);
    return new CarbonmonClientError(status.UNKNOWN, message, { method, cause: err });
  }
}

/** Same as CarbonmonClientError.fromServiceError. */
export const fromServiceError = (err: unknown, method?: string): CarbonmonClientError => CarbonmonClientError.fromServiceError(err, method);
