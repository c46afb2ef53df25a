/**
 * TLS and tokens for clients: channel credentials from PEM (CA, optional client certificate for mutual
 * TLS) and an interceptor that sends `authorization: Bearer <token>` with every call. The token goes in
 * an interceptor rather than call credentials so that it also works over plaintext to a loopback
 * service (grpc-js refuses call credentials on insecure channels).
 */
import { readFileSync } from "node:fs";
import { credentials as grpcCredentials, InterceptingCall, type ChannelCredentials, type Interceptor } from "@grpc/grpc-js";

export interface ClientTls {
  /** PEM CA certificates the server's certificate is checked against; unset: the system's roots. */
  ca?: Buffer | string;
  /** PEM client certificate and key: mutual TLS. */
  cert?: Buffer | string;
  key?: Buffer | string;
}

export interface ClientSecurityOptions {
  /** Set (even `{}`): TLS; unset: plaintext. */
  tls?: ClientTls;
  /** Sent as `authorization: Bearer <token>`. */
  token?: string;
}

/** File paths, as the CLI's --tls-ca/--tls-cert/--tls-key/--token-file and CARBONMON_CLIENT_* name them. */
export interface ClientSecurityFiles {
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  tokenFile?: string | undefined;
}

const buf = (pem: Buffer | string | undefined): Buffer | null => (pem === undefined ? null : Buffer.from(pem));

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`${what} ${JSON.stringify(path)}: cannot read it (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/** Reads the files (an error names the file, never its content). A token file's trailing newline is dropped. */
export function clientSecurityFromFiles(files: ClientSecurityFiles): ClientSecurityOptions {
  const options: ClientSecurityOptions = {};
  if (files.caFile !== undefined || files.certFile !== undefined) {
    options.tls = {
      ...(files.caFile !== undefined ? { ca: read(files.caFile, "TLS CA file") } : {}),
      ...(files.certFile !== undefined ? { cert: read(files.certFile, "TLS certificate file") } : {}),
      ...(files.keyFile !== undefined ? { key: read(files.keyFile, "TLS key file") } : {}),
    };
  }
  if (files.tokenFile !== undefined) {
    const token = read(files.tokenFile, "token file").toString("utf8").trim();
    if (token === "" || /\s/.test(token)) throw new Error(`token file ${JSON.stringify(files.tokenFile)}: expected one token on one line`);
    options.token = token;
  }
  return options;
}

export function tokenInterceptor(token: string): Interceptor {
  const value = `Bearer ${token}`;
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set("authorization", value);
        next(metadata, listener);
      },
    });
}

/** Channel credentials and interceptors for a generated client's constructor. */
export function channelSecurity(
  options: ClientSecurityOptions,
  explicit?: ChannelCredentials,
): { credentials: ChannelCredentials; interceptors: Interceptor[] } {
  const tls = options.tls;
  const credentials =
    explicit ?? (tls ? grpcCredentials.createSsl(buf(tls.ca), buf(tls.key), buf(tls.cert)) : grpcCredentials.createInsecure());
  return { credentials, interceptors: options.token === undefined ? [] : [tokenInterceptor(options.token)] };
}
