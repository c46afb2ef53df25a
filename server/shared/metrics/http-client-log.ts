/**
 * The access log of outgoing HTTP requests (the providers' upstream calls): one debug line per request
 * with the provider, method, path (never the query string: it may hold keys), status and duration. It
 * listens on undici's diagnostics channels, so no provider needs a logger passed in.
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import type { Logger } from "../log.js";

interface UndiciRequest {
  origin?: unknown;
  method?: string;
  path?: string;
}

/** Logs requests to the given base URLs (provider name → URL); returns a function that stops it. */
export function logUpstreamRequests(bases: ReadonlyArray<{ provider: string; url: string }>, log: Logger): () => void {
  const origins = new Map<string, string>();
  for (const b of bases) {
    try {
      origins.set(new URL(b.url).origin, b.provider);
    } catch {}
  }
  const started = new WeakMap<object, number>();
  const providerOf = (r: UndiciRequest): string | undefined => origins.get(String(r.origin ?? "").replace(/\/$/, ""));
  const onCreate = (message: unknown): void => {
    const { request } = message as { request: UndiciRequest };
    if (providerOf(request) && log.isLevelEnabled("debug")) started.set(request, performance.now());
  };
  const line = (request: UndiciRequest, status: number | string): void => {
    const t0 = started.get(request);
    if (t0 === undefined) return;
    started.delete(request);
    const path = (request.path ?? "").split("?")[0];
    log.debug(
      { provider: providerOf(request), method: request.method, path, status, ms: Math.round((performance.now() - t0) * 1000) / 1000 },
      "upstream request",
    );
  };
  const onHeaders = (message: unknown): void => {
    const m = message as { request: UndiciRequest; response: { statusCode: number } };
    line(m.request, m.response.statusCode);
  };
  const onError = (message: unknown): void => {
    const m = message as { request: UndiciRequest; error: { code?: string; name?: string } };
    line(m.request, m.error?.code ?? m.error?.name ?? "error");
  };
  subscribe("undici:request:create", onCreate);
  subscribe("undici:request:headers", onHeaders);
  subscribe("undici:request:error", onError);
  return () => {
    unsubscribe("undici:request:create", onCreate);
    unsubscribe("undici:request:headers", onHeaders);
    unsubscribe("undici:request:error", onError);
  };
}
