import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import test, { type ExecutionContext } from "ava";
import { getJson, retryAfterMs, type GetJsonOptions } from "../../../../server/shared/net/http.js";
import { AppError, Code } from "../../../../server/shared/errors.js";
import { FAKE_EM_TOKEN, startFakeElectricityMaps, type FakeElectricityMaps } from "../../../helpers/fake-electricitymaps.js";

/** Polls a condition (20 ms) until it holds, or throws after timeoutMs. */
async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !check(); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

const LATEST = "/carbon-intensity/latest";
const QUERY_SECRET = "query-secret-9b1e77c4";

async function fake(t: ExecutionContext): Promise<FakeElectricityMaps> {
  const em = await startFakeElectricityMaps();
  t.teardown(() => em.close());
  return em;
}

/** getJson against the fake's latest, with a recording sleep. */
function client(em: FakeElectricityMaps, extra: Partial<GetJsonOptions> = {}) {
  const sleeps: number[] = [];
  const url = `${em.url}${LATEST}?zone=US-MIDW-MISO&api_key=${QUERY_SECRET}`;
  const get = () =>
    getJson(url, {
      provider: "testprov",
      headers: { "auth-token": FAKE_EM_TOKEN },
      codeFromHttpStatus: () => undefined,
      sleep: async (ms) => void sleeps.push(ms),
      ...extra,
    });
  return { get, sleeps };
}

/** Expects an AppError with the code; checks that no secret leaks into its message or hint. */
async function rejects(t: ExecutionContext, p: Promise<unknown>, code: Code): Promise<AppError> {
  const err = await t.throwsAsync(p, { instanceOf: AppError });
  t.is(err!.code, code, err!.message);
  for (const secret of [FAKE_EM_TOKEN, QUERY_SECRET]) t.false(err!.detail.includes(secret), `secret in: ${err!.detail}`);
  t.false(err!.detail.includes("?"), `query in: ${err!.detail}`);
  return err as AppError;
}

test("returns the parsed JSON and sends the headers", async (t) => {
  const em = await fake(t);
  const body = (await client(em).get()) as { zone: string; carbonIntensity: number };
  t.is(body.zone, "US-MIDW-MISO");
  t.is(body.carbonIntensity, 494);
  t.is(em.requests.length, 1);
  t.is(em.requests[0]!.headers["auth-token"], FAKE_EM_TOKEN);
  t.is(em.requests[0]!.query.api_key, QUERY_SECRET);
});

test("5xx is retried with exponential backoff, then UNAVAILABLE naming provider, path, status and upstream text", async (t) => {
  const em = await fake(t);
  em.setFault(LATEST, { status: 503, body: { error: "Service temporarily overloaded" } });
  const { get, sleeps } = client(em);
  const err = await rejects(t, get(), Code.Unavailable);
  t.is(em.requests.length, 3);
  t.is(sleeps.length, 2);
  t.true(sleeps[0]! >= 100 && sleeps[0]! <= 200, String(sleeps[0]));
  t.true(sleeps[1]! >= 200 && sleeps[1]! <= 400, String(sleeps[1]));
  t.is(err.message, "testprov /v3/carbon-intensity/latest answered HTTP 503: Service temporarily overloaded");
});

test("a 5xx followed by success returns the value", async (t) => {
  const em = await fake(t);
  em.setFault(LATEST, { status: 502, body: "<html>Bad gateway</html>", times: 1 });
  const { get, sleeps } = client(em);
  t.is(((await get()) as { zone: string }).zone, "US-MIDW-MISO");
  t.is(em.requests.length, 2);
  t.is(sleeps.length, 1);
});

test("429 honours Retry-After in seconds, then succeeds", async (t) => {
  const em = await fake(t);
  em.setFault(LATEST, { status: 429, body: { error: "Too many requests" }, headers: { "retry-after": "7" }, times: 2 });
  const { get, sleeps } = client(em);
  t.is(((await get()) as { zone: string }).zone, "US-MIDW-MISO");
  t.deepEqual(sleeps, [7000, 7000]);
  t.is(em.requests.length, 3);
});

test("429 beyond the retries is RESOURCE_EXHAUSTED; a long Retry-After is capped at 30 s", async (t) => {
  const em = await fake(t);
  em.setFault(LATEST, { status: 429, body: { error: "Too many requests" }, headers: { "retry-after": "3600" } });
  const { get, sleeps } = client(em, { retries: 1 });
  const err = await rejects(t, get(), Code.ResourceExhausted);
  t.regex(err.message, /testprov .* HTTP 429: Too many requests/);
  t.deepEqual(sleeps, [30_000]);
  t.is(em.requests.length, 2);
});

test("Retry-After as an HTTP date, and absent or unreadable", (t) => {
  const now = Date.UTC(2024, 10, 30, 12, 0, 0);
  t.is(retryAfterMs(new Date(now + 5000).toUTCString(), now), 5000);
  t.is(retryAfterMs(new Date(now - 5000).toUTCString(), now), 0);
  t.is(retryAfterMs("1.5", now), 1500);
  t.is(retryAfterMs(undefined, now), undefined);
  t.is(retryAfterMs("soon", now), undefined);
});

test("a server slower than timeoutMs (headers) is UNAVAILABLE, and retried", async (t) => {
  const em = await fake(t);
  em.setFault(LATEST, { delayMs: 5000 });
  const { get, sleeps } = client(em, { timeoutMs: 500, retries: 1 });
  // The timeout (not the server's 5 s delay) ended each attempt: its message says so.
  const err = await rejects(t, get(), Code.Unavailable);
  t.regex(err.message, /testprov \/v3\/carbon-intensity\/latest timed out after 500 ms/);
  // The retry was sent: the server logs it once it reads it (a busy machine may read it after the client gave up).
  await until(() => em.requests.length === 2, "the retry at the server", 5000);
  t.is(em.requests.length, 2);
  t.is(sleeps.length, 1);
});

test("a body that stalls past timeoutMs is UNAVAILABLE", async (t) => {
  const em = await fake(t);
  em.setFault(LATEST, { bodyDelayMs: 2000 });
  const err = await rejects(t, client(em, { timeoutMs: 150, retries: 0 }).get(), Code.Unavailable);
  t.regex(err.message, /timed out after 150 ms/);
});

test("malformed JSON is UNAVAILABLE and not retried", async (t) => {
  const em = await fake(t);
  em.setFault(LATEST, { malformedJson: true });
  const err = await rejects(t, client(em).get(), Code.Unavailable);
  t.regex(err.message, /^testprov returned malformed JSON/);
  t.is(em.requests.length, 1);
});

test("other statuses map through codeFromHttpStatus, default 4xx → INVALID_ARGUMENT, without retry", async (t) => {
  const em = await fake(t);
  em.setFault(LATEST, { status: 418, body: { message: "I'm a teapot" } });
  const err = await rejects(t, client(em).get(), Code.InvalidArgument);
  t.is(err.message, "testprov /v3/carbon-intensity/latest answered HTTP 418: I'm a teapot");
  t.is(em.requests.length, 1);
  const mapped = await rejects(
    t,
    client(em, {
      codeFromHttpStatus: (s) => (s === 418 ? Code.PermissionDenied : undefined),
      hintFromHttpStatus: () => "ask for coffee",
    }).get(),
    Code.PermissionDenied,
  );
  t.is(mapped.hint, "ask for coffee");
  t.is(em.requests.length, 2);
});

test("secrets echoed by the upstream are redacted from messages", async (t) => {
  const em = await fake(t);
  em.setFault(LATEST, { status: 401, body: { error: `Invalid auth-token ${FAKE_EM_TOKEN} for api_key=${QUERY_SECRET}` } });
  const err = await rejects(t, client(em).get(), Code.InvalidArgument);
  t.is(err.message, "testprov /v3/carbon-intensity/latest answered HTTP 401: Invalid auth-token *** for api_key=***");
});

test("a refused connection is UNAVAILABLE after the retries", async (t) => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  const sleeps: number[] = [];
  const p = getJson(`http://127.0.0.1:${port}/v3/x?api_key=${QUERY_SECRET}`, {
    provider: "testprov",
    codeFromHttpStatus: () => undefined,
    sleep: async (ms) => void sleeps.push(ms),
  });
  const err = await rejects(t, p, Code.Unavailable);
  t.regex(err.message, /testprov \/v3\/x failed \(ECONNREFUSED\)/);
  t.is(sleeps.length, 2);
});

test("the caller's abort is CANCELLED, not retried", async (t) => {
  const em = await fake(t);
  em.setFault(LATEST, { delayMs: 2000 });
  const ac = new AbortController();
  const rejected = rejects(t, client(em, { signal: ac.signal }).get(), Code.Cancelled);
  // Aborted once the server holds the request (not after a fixed delay: on a busy machine it may not be there yet).
  await until(() => em.requests.length === 1, "the request at the server");
  ac.abort();
  await rejected;
  t.is(em.requests.length, 1);
});
