/**
 * The one HTTP client of the intensity service (undici). GET + JSON with a total timeout (headers and body),
 * retries with jittered exponential backoff for 5xx, timeouts and connection errors, Retry-After for 429,
 * and every failure turned into an AppError once. Messages name the provider, the URL's path, the HTTP
 * status and the upstream's error text; never the query string nor a header value (API keys).
 */
import { setTimeout as delay } from "node:timers/promises";
import { request } from "undici";
import { AppError, Code } from "../errors.js";

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

type Attempt = { ok: true; body: unknown } | { ok: false; error: AppError; retryAfterMs?: number };

export async function getJson(url: string, options: GetJsonOptions): Promise<unknown> {
  const retries = options.retries ?? 2;
  const sleep = options.sleep ?? ((ms: number) => delay(ms, undefined, { signal: options.signal }));
  for (let attempt = 0; ; attempt++) {
    const result = await attemptOnce(url, options);
    if (result.ok) return result.body;
    if (attempt >= retries) throw result.error;
    try {
      await sleep(result.retryAfterMs ?? backoffMs(attempt));
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
  const timeoutMs = o.timeoutMs ?? 10_000;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = o.signal ? AbortSignal.any([timeout, o.signal]) : timeout;
  let status: number, retryAfter: string | undefined, text: string;
  try {
    const res = await request(url, { method: "GET", headers: { accept: "application/json", ...o.headers }, signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    status = res.statusCode;
    const h = res.headers["retry-after"];
    retryAfter = Array.isArray(h) ? h[0] : h;
    text = await res.body.text();
  } catch (err) {
    if (o.signal?.aborted) throw cancelled(url, o);
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
  const message = redact(`${o.provider} ${where(url)} answered HTTP ${status}: ${errorText(body)}`, url, o);
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

function cancelled(url: string, o: GetJsonOptions): AppError {
  return new AppError(Code.Cancelled, `${o.provider} ${where(url)} request cancelled`);
}

/** The upstream's own words: its `error`/`message` field, or the start of the body. */
function errorText(body: unknown): string {
  if (body && typeof body === "object") {
    const b = body as Record<string, unknown>;
    for (const k of ["error", "message", "detail"]) if (typeof b[k] === "string") return b[k].slice(0, MAX_ERROR_TEXT);
    return JSON.stringify(body).slice(0, MAX_ERROR_TEXT);
  }
  const s = String(body ?? "").trim();
  return s === "" ? "(empty body)" : s.slice(0, MAX_ERROR_TEXT);
}

function describe(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; message?: unknown };
  return String(e?.code ?? e?.name ?? e?.message ?? err);
}

const SECRET_PARAM = /token|key|secret|pass|auth|sig/i;

/** Removes header values and secret-looking query values, should an upstream echo them back. */
function redact(message: string, url: string, o: GetJsonOptions): string {
  const query = [...new URL(url).searchParams].filter(([k]) => SECRET_PARAM.test(k)).map(([, v]) => v);
  let out = message;
  for (const v of [...Object.values(o.headers ?? {}), ...query]) if (v.length >= 4) out = out.split(v).join("***");
  return out;
}
