/**
 * Server bootstrap shared by both services: grpc-js server, the standard health service, server
 * reflection (so grpcurl and other generic clients can list and call everything), graceful shutdown.
 */
import { join } from "node:path";
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthService } from "./health.js";
import type { Logger } from "./log.js";
import { PACKAGE_ROOT } from "./paths.js";
import { addReflection, REFLECTION_SERVICES } from "./reflection.js";
import { authInterceptor } from "./security/interceptor.js";
import type { ServerSecurity } from "./security/server-security.js";

export const PROTO_ROOT = join(PACKAGE_ROOT, "proto");
export const PROTO_FILES = ["carbonmon/agent/v1/agent.proto", "carbonmon/intensity/v1/intensity.proto"];

export interface ServiceRegistration {
  /** Fully qualified name, e.g. "carbonmon.agent.v1.EnergyMonitor", as health and reflection report it. */
  name: string;
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

export interface ServeOptions {
  listen: string;
  services: ServiceRegistration[];
  log: Logger;
  /** Runs after the server stopped accepting calls: close stores, devices. */
  onShutdown?: () => Promise<void> | void;
  /** Runs when shutdown begins, before in-flight calls drain: end streams with a status. */
  onDraining?: () => void;
  /** TLS credentials and the auth interceptor (security/server-security.ts); default: plaintext, no auth. */
  security?: ServerSecurity;
}

export interface RunningServer {
  /** The bound port (useful with port 0). */
  port: number;
  /** "host:port" as bound. */
  address: string;
  server: Server;
  health: HealthService;
  /** Re-reads certificates and tokens (SIGHUP). */
  reload(): void;
  /** Stops accepting calls, lets in-flight calls finish for up to graceMs, then cleans up. Idempotent. */
  shutdown(graceMs?: number): Promise<void>;
}

export async function serve(options: ServeOptions): Promise<RunningServer> {
  // The interceptor is always installed: it is what gives handlers their caller (principal.ts).
  const security: ServerSecurity = options.security ?? {
    credentials: ServerCredentials.createInsecure(),
    interceptors: [authInterceptor(undefined, options.log)],
    reload: () => undefined,
  };
  const server = new Server({ "grpc.max_receive_message_length": 16 * 1024 * 1024, interceptors: security.interceptors });
  for (const s of options.services) server.addService(s.definition, s.implementation);

  const health = new HealthService({ "": "SERVING" });
  for (const s of options.services) health.setStatus(s.name, "SERVING");
  health.addToServer(server);

  const names = [...options.services.map((s) => s.name), "grpc.health.v1.Health"];
  // Reflection answers from the compiler's descriptors (proto/gen/descriptors.binpb), for both versions.
  addReflection(server, [...names, ...REFLECTION_SERVICES]);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.listen, security.credentials, (err, bound) =>
      err ? reject(new Error(`cannot listen on ${options.listen}: ${err.message}`)) : resolve(bound),
    ),
  );
  const host = options.listen.slice(0, options.listen.lastIndexOf(":"));
  const address = `${host}:${port}`;
  options.log.info({ address, services: names }, "listening");

  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs = 5000): Promise<void> =>
    (stopping ??= (async () => {
      options.log.info("shutting down");
      health.setStatus("", "NOT_SERVING");
      for (const s of options.services) health.setStatus(s.name, "NOT_SERVING");
      options.onDraining?.();
      await drain(server, graceMs);
      await options.onShutdown?.();
      options.log.info("stopped");
    })());

  return { port, address, server, health, reload: () => security.reload(), shutdown };
}

async function drain(server: Server, graceMs: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** SIGTERM / SIGINT shut the servers down gracefully, then exit 0; a second signal exits at once. */
export function shutdownOnSignals(servers: readonly RunningServer[], log: Logger): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) process.exit(130);
    signalled = true;
    log.info({ signal }, "signal received");
    Promise.all(servers.map((s) => s.shutdown())).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}
