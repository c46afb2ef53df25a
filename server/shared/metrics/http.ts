/**
 * The Prometheus endpoint of one service: GET /metrics answers the service's prom-client registry in the
 * text exposition format. A port that cannot be bound is logged, not fatal: the service measures and
 * answers without its metrics (Prometheus shows the target down), rather than not at all.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "../log.js";

export interface MetricsEndpoint {
  /** "host:port" as bound (useful with port 0). */
  address: string;
  close(): Promise<void>;
}

/** Serves registry on listen ("host:port"); undefined when the port cannot be bound (logged). */
export async function serveMetrics(listen: string, registry: Registry, log: Logger): Promise<MetricsEndpoint | undefined> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("carbonmon: metrics are at /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(req.method === "HEAD" ? undefined : text),
      (err: unknown) => {
        log.error({ err }, "collecting metrics failed");
        res.writeHead(500, { "content-type": "text/plain" }).end("collecting metrics failed (see the service's log)\n");
      },
    );
  });
  server.keepAliveTimeout = 65_000; // longer than Prometheus' scrape interval: one connection per target
  const colon = listen.lastIndexOf(":");
  const host = listen.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(listen.slice(colon + 1));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    log.error(
      { err: (err as Error).message, listen },
      "cannot serve metrics on this address; the service runs without its /metrics endpoint",
    );
    return undefined;
  }
  const bound = server.address() as AddressInfo;
  const address = `${listen.slice(0, colon)}:${bound.port}`;
  log.info({ address: `http://${address}/metrics` }, "serving metrics");
  return { address, close: () => closeServer(server) };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
