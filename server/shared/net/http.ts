/**
 * The one HTTP client of the intensity service (undici). GET + JSON with a total timeout (headers and body),
 * retries with jittered exponential backoff for 5xx, timeouts and connection errors, Retry-After for 429,
 * and every failure turned into an AppError once. Messages name the provider, the URL's path, the HTTP
 * status and the upstream's error text; never the query string nor a header value (API keys).
 */
import { setTimeout as delay } from "node:timers/promises";
import { AppError, Code } from "../errors.js";
import { upstreamContext } from "./upstream-context.js";

export interface GetJsonOptions {
  headers?: Record<string, string>;
  /** Total time for one attempt, headers and body (default 10 s). */
  timeoutMs?: number;
  /** Further attempts after the first for 5xx, 429, timeouts and connection errors (default 2). */
  retries?: number;
  /** Names the upstream in messages, e.g. "electricitymaps". */
  provider: string;
  /** The code for a non-2xx, non-429, non-5xx status; undefined: 4xx → INVALID_ARGUMENT, else UNAVAILABLE. */
  codeFromHttpStatus: (status: number, body: unknown) => Code | undefined;
  /** What the caller can do about a failed status (added to the AppError's hint). */
  hintFromHttpStatus?: (status: number, body: unknown) => string | undefined;
  signal?: AbortSignal;
  /** Waits between attempts; injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
}

export const BACKOFF_BASE_MS = 200;
export const RETRY_AFTER_CAP_MS = 30_000;
const MAX_ERROR_TEXT = 300;
/** The largest response body read: a larger one is refused (UNAVAILABLE) without being read whole. */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

type Attempt = { ok: true; body: unknown } | { ok: false; error: AppError; retryAfterMs?: number };

/**
 * The caller's context (upstream-context.ts) applies on top of `options`: its signal aborts every attempt
 * and wait, each attempt is charged first (beforeRequest), and no retry waits past its deadline.
 */
export async function getJson(url: string, given: GetJsonOptions): Promise<unknown> {
  const ctx = upstreamContext.getStore();
  const signals = [given.signal, ctx?.signal].filter((x): x is AbortSignal => x !== undefined);
  const options: GetJsonOptions = {
    ...given,
    ...(signals.length > 0 ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
  };
  const retries = options.retries ?? 2;
  const sleep = options.sleep ?? ((ms: number) => delay(ms, undefined, { signal: options.signal }));
  for (let attempt = 0; ; attempt++) {
    if (options.signal?.aborted) throw cancelled(url, options);
    await ctx?.beforeRequest?.();
    const result = await attemptOnce(url, options);
    if (result.ok) return result.body;
    const waitMs = result.retryAfterMs ?? backoffMs(attempt);
    // A wait that would outlast the caller's deadline is no retry: answer now, so the chain can go on.
    if (attempt >= retries || (ctx?.deadlineMs !== undefined && Date.now() + waitMs >= ctx.deadlineMs)) throw result.error;
    try {
      await sleep(waitMs);
    } catch (err) {
      throw options.signal?.aborted ? cancelled(url, options) : AppError.from(err);
    }
  }
}

/** 200 ms × 2^attempt, jittered to between half and all of it. */
export function backoffMs(attempt: number): number {
  return BACKOFF_BASE_MS * 2 ** attempt * (0.5 + Math.random() / 2);
}

/** Retry-After in seconds or as an HTTP date, capped; undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, nowMs = Date.now()): number | undefined {
  const v = value?.trim() ?? "";
  const ms = v === "" ? NaN : /^\d+(\.\d+)?$/.test(v) ? Number(v) * 1000 : Date.parse(v) - nowMs;
  return Number.isNaN(ms) ? undefined : Math.min(Math.max(ms, 0), RETRY_AFTER_CAP_MS);
}

async function attemptOnce(url: string, o: GetJsonOptions): Promise<Attempt> {
  // undici is loaded with the first request (~0.1 s of CPU): a service whose providers make none never loads
  // it. Loaded before the timeout starts, so the upstream gets its whole timeout.
  const { request } = await import("undici");
  const timeoutMs = o.timeoutMs ?? 10_000;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = o.signal ? AbortSignal.any([timeout, o.signal]) : timeout;
  let status: number, retryAfter: string | undefined, text: string;
  try {
    const res = await request(url, {
      method: "GET",
      headers: { accept: "application/json", ...o.headers },
      signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    status = res.statusCode;
    const h = res.headers["retry-after"];
    retryAfter = Array.isArray(h) ? h[0] : h;
    text = await readCapped(res.body, res.headers["content-length"]);
  } catch (err) {
    if (o.signal?.aborted) throw cancelled(url, o);
    if (err === TOO_LARGE)
      return {
        ok: false,
        error: new AppError(Code.Unavailable, `${o.provider} ${where(url)} answered more than ${MAX_BODY_BYTES} bytes; not read`),
      };
    const why = timeout.aborted ? `timed out after ${timeoutMs} ms` : `failed (${describe(err)})`;
    return { ok: false, error: new AppError(Code.Unavailable, redact(`${o.provider} ${where(url)} ${why}`, url, o)) };
  }
  return fromResponse(url, o, status, text, retryAfter);
}

function fromResponse(url: string, o: GetJsonOptions, status: number, text: string, retryAfter: string | undefined): Attempt {
  if (status >= 200 && status < 300) {
    try {
      return { ok: true, body: JSON.parse(text) as unknown };
    } catch {
      throw new AppError(Code.Unavailable, `${o.provider} returned malformed JSON (${where(url)}, HTTP ${status})`);
    }
  }
  let body: unknown = text;
  try {
    body = JSON.parse(text) as unknown;
  } catch {}
  // Redacted before errorText cuts it: a cut could otherwise keep the start of a secret.
  const message = redact(`${o.provider} ${where(url)} answered HTTP ${status}: ${errorText(body, (t) => redact(t, url, o))}`, url, o);
  if (status === 429) {
    const error = new AppError(Code.ResourceExhausted, message, { hint: `${o.provider} rate limit; retry later` });
    return { ok: false, error, retryAfterMs: retryAfterMs(retryAfter) };
  }
  if (status >= 500) return { ok: false, error: new AppError(Code.Unavailable, message) };
  const code = o.codeFromHttpStatus(status, body) ?? (status >= 400 && status < 500 ? Code.InvalidArgument : Code.Unavailable);
  throw new AppError(code, message, { hint: o.hintFromHttpStatus?.(status, body) });
}

/** The path only: the query may hold keys. */
function where(url: string): string {
  return new URL(url).pathname;
}

/** The abort's own reason when it is an AppError (the caller's deadline, its cancellation), else CANCELLED. */
function cancelled(url: string, o: GetJsonOptions): AppError {
  const reason: unknown = o.signal?.reason;
  if (reason instanceof AppError) return new AppError(reason.code, `${o.provider} ${where(url)} request ${reason.message}`);
  return new AppError(Code.Cancelled, `${o.provider} ${where(url)} request cancelled`);
}

const TOO_LARGE = new Error("response body too large");

/** The body as text, refused (TOO_LARGE, the stream destroyed) once it is known to exceed MAX_BODY_BYTES. */
async function readCapped(
  body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown },
  contentLength: string | string[] | undefined,
): Promise<string> {
  const declared = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
  const chunks: Buffer[] = [];
  let bytes = declared > MAX_BODY_BYTES ? Infinity : 0;
  if (bytes <= MAX_BODY_BYTES) {
    for await (const chunk of body) {
      bytes += chunk.length;
      if (bytes > MAX_BODY_BYTES) break;
      chunks.push(chunk);
    }
  }
  if (bytes > MAX_BODY_BYTES) {
    body.destroy();
    throw TOO_LARGE;
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The upstream's own words: its `error`/`message` field, or the start of the body. */
function errorText(body: unknown, clean: (text: string) => string): string {
  if (body && typeof body === "object") {
    const b = body as Record<string, unknown>;
    for (const k of ["error", "message", "detail"]) if (typeof b[k] === "string") return clean(b[k]).slice(0, MAX_ERROR_TEXT);
    return clean(JSON.stringify(body)).slice(0, MAX_ERROR_TEXT);
  }
  const s = String(body ?? "").trim();
  return s === "" ? "(empty body)" : clean(s).slice(0, MAX_ERROR_TEXT);
}

function describe(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; message?: unknown };
  return String(e?.code ?? e?.name ?? e?.message ?? err);
}

const SECRET_PARAM = /token|key|secret|pass|auth|sig/i;

/** Removes header values and secret-looking query values, in every encoding, should an upstream echo them back. */
function redact(message: string, url: string, o: GetJsonOptions): string {
  const query = [...new URL(url).searchParams].filter(([k]) => SECRET_PARAM.test(k)).map(([, v]) => v);
  let out = message;
  for (const v of secretForms([...Object.values(o.headers ?? {}), ...query])) out = out.split(v).join("***");
  return out;
}

const AUTH_SCHEME = /^(basic|bearer|token|digest)$/i;
const BASE64 = /^[A-Za-z0-9+/_-]{4,}={0,2}$/;

/**
 * Every way a secret may come back, longest first: each value and each word of it but the scheme ("Basic
 * dXNlcjpwYXNz": the credential alone), what a base64 word decodes to (for user:password, the password;
 * the user name alone is no secret), and each of those as base64, base64url, URL-encoded and JSON-escaped. Pieces under 4 characters are left alone (they would blank out ordinary words).
 */
function secretForms(values: readonly string[]): string[] {
  const secrets = new Set<string>();
  const encoded = new Set<string>();
  for (const value of values) {
    secrets.add(value);
    for (const word of value.split(/\s+/)) {
      if (AUTH_SCHEME.test(word)) continue;
      secrets.add(word);
      const decoded = BASE64.test(word) ? Buffer.from(word, "base64").toString("utf8") : "";
      if (
        decoded !== "" &&
        // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters mean the word was not base64 text
        !/[\u0000-\u001f\ufffd]/.test(decoded) &&
        Buffer.from(decoded).toString("base64").replace(/=+$/, "") === word.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "")
      ) {
        // user:password: its encodings go, and the password in any form; the user name alone may stay.
        if (decoded.includes(":")) {
          secrets.add(decoded.slice(decoded.indexOf(":") + 1));
          for (const f of encodings(decoded).slice(1, 4)) encoded.add(f);
        } else secrets.add(decoded);
      }
    }
  }
  const forms = new Set<string>(encoded);
  for (const s of secrets) if (s.length >= 4) for (const f of encodings(s)) forms.add(f);
  return [...forms].sort((a, b) => b.length - a.length);
}

/** The text itself, then as base64 (padded and not), base64url, URL-encoded and JSON-escaped. */
function encodings(s: string): string[] {
  const b64 = Buffer.from(s).toString("base64");
  return [s, b64, b64.replace(/=+$/, ""), Buffer.from(s).toString("base64url"), encodeURIComponent(s), JSON.stringify(s).slice(1, -1)];
}
