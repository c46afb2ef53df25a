import test from "ava";
import { ProviderGuard } from "../../../server/intensity/guard.js";
import { ManualClock } from "../../../server/shared/clock.js";
import { AppError, Code } from "../../../server/shared/errors.js";

const fail = (code: Code) => () => Promise.reject(new AppError(code, "upstream said no"));

test("the budget refills continuously and refuses with RESOURCE_EXHAUSTED when spent", async (t) => {
  const clock = new ManualClock();
  const g = new ProviderGuard("p", { capacity: 3, windowMs: 60_000 }, clock);
  for (let i = 0; i < 3; i++) await g.run(async () => i);
  const err = (await t.throwsAsync(g.run(async () => 1))) as AppError;
  t.is(err.code, Code.ResourceExhausted);
  t.regex(err.message, /3 per 60 s/);
  clock.advance(20_000); // a third of the window: one token
  t.is(await g.run(async () => "ok"), "ok");
  t.true(g.remaining() < 1);
});

test("five unhealthy failures open the circuit for 30 s; then one trial call decides", async (t) => {
  const clock = new ManualClock();
  const g = new ProviderGuard("p", undefined, clock);
  for (let i = 0; i < 5; i++) await t.throwsAsync(g.run(fail(Code.Unavailable)));
  t.is(g.health(), "circuit_open");
  let called = false;
  const err = (await t.throwsAsync(g.run(async () => (called = true)))) as AppError;
  t.false(called, "not asked while open");
  t.is(err.code, Code.Unavailable);
  t.regex(err.message, /not asked for 30 s after 5 failures/);
  clock.advance(30_001);
  await t.throwsAsync(g.run(fail(Code.Unavailable)));
  t.is(g.health(), "circuit_open", "the trial failed: open again");
  clock.advance(30_001);
  t.is(await g.run(async () => 7), 7);
  t.is(g.health(), "healthy");
});

test("answers that blame the question (NOT_FOUND, INVALID_ARGUMENT, UNAUTHENTICATED) do not trip the breaker", async (t) => {
  const g = new ProviderGuard("p", undefined, new ManualClock());
  for (let i = 0; i < 10; i++) await t.throwsAsync(g.run(fail([Code.NotFound, Code.InvalidArgument, Code.Unauthenticated][i % 3]!)));
  t.is(g.health(), "healthy");
});
