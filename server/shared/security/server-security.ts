/**
 * A service's security from its settings: TLS credentials (reloadable), the authenticator, the interceptor
 * that serve installs, and the safe-default rule: a non-loopback address is served only with TLS and
 * authentication (tokens, JWTs or client certificates), unless CARBONMON_INSECURE=true says otherwise.
 */
import { ServerCredentials, type ServerInterceptor } from "@grpc/grpc-js";
import type { SecurityConfig } from "../config.js";
import { AppError, Code } from "../errors.js";
import type { Logger } from "../log.js";
import { Authenticator } from "./authenticator.js";
import { authInterceptor } from "./interceptor.js";
import { ReloadableCertificates } from "./tls.js";

export interface ServerSecurity {
  credentials: ServerCredentials;
  interceptors: ServerInterceptor[];
  /** Re-reads certificates, tokens and JWKS (SIGHUP); what fails to read keeps its previous version, logged. */
  reload(): void;
}

/** Whether a listen address ("host:port") is reachable only from this machine. */
export function isLoopback(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(":")).replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** A refusal that the CLI prints as one line and exits 2 for. */
export class InsecureListenError extends AppError {
  constructor(listen: string, missing: string) {
    super(
      Code.FailedPrecondition,
      `refusing to listen on ${listen} without ${missing}: set CARBONMON_TLS_CERT_FILE and CARBONMON_TLS_KEY_FILE, and CARBONMON_AUTH_TOKENS_FILE (or CARBONMON_AUTH_JWKS_FILE, or CARBONMON_TLS_CLIENT_CA_FILE); or CARBONMON_INSECURE=true (--insecure) to serve anyway`,
    );
    this.name = "InsecureListenError";
  }
}

/** What a service listening on `listen` lacks to be served safely ("TLS", "authentication", both), or undefined. */
export function insecurity(config: SecurityConfig, listen: string): string | undefined {
  const tls = config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined;
  const authenticated = Authenticator.enabled(config) || config.tlsClientCaFile !== undefined;
  if (isLoopback(listen) || (tls && authenticated)) return undefined;
  return !tls && !authenticated ? "TLS and authentication" : !tls ? "TLS" : "authentication";
}

export function createServerSecurity(config: SecurityConfig, listen: string, log: Logger): ServerSecurity {
  const tls = config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined;
  const missing = insecurity(config, listen);
  if (missing !== undefined) {
    if (!config.insecure) throw new InsecureListenError(listen, missing);
    log.warn(
      { listen, missing },
      `serving on a non-loopback address without ${missing} (CARBONMON_INSECURE=true): anyone who can reach the port can call every method`,
    );
  }
  const certificates = tls
    ? new ReloadableCertificates({ certFile: config.tlsCertFile!, keyFile: config.tlsKeyFile!, clientCaFile: config.tlsClientCaFile })
    : undefined;
  const auth = Authenticator.enabled(config) ? new Authenticator(config) : undefined;
  log.info(
    { tls, mutualTls: certificates?.mutual ?? false, tokens: auth?.tokenCount ?? 0, jwt: config.jwksFile !== undefined },
    "security",
  );
  return {
    credentials: certificates?.credentials() ?? ServerCredentials.createInsecure(),
    interceptors: [authInterceptor(auth, log)],
    reload() {
      const failures = [certificates?.reload(), auth?.reload()].filter((e): e is AppError => e !== undefined);
      for (const e of failures) log.error({ reason: e.message }, "reload failed; the previous certificates or tokens stay in force");
      if (failures.length === 0) log.info({ tls, tokens: auth?.tokenCount ?? 0 }, "certificates and tokens reloaded");
    },
  };
}
