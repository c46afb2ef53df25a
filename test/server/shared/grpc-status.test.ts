import { status, type ServerUnaryCall } from "@grpc/grpc-js";
import test from "ava";
import { AppError, Code } from "../../../server/shared/errors.js";
import { grpcStatusOf, toServiceError, unary } from "../../../server/shared/grpc-status.js";

test("every code maps to the gRPC status of the same name", (t) => {
  for (const code of Object.values(Code)) {
    t.is(status[grpcStatusOf(code)], code);
  }
});

test("an AppError keeps its message and hint; the hint also travels as metadata", (t) => {
  const e = toServiceError(new AppError(Code.AlreadyExists, "window 'train' is already open", { hint: "end it first" }));
  t.is(e.code, status.ALREADY_EXISTS);
  t.is(e.details, "window 'train' is already open (end it first)");
  t.deepEqual(e.metadata!.get("carbonmon-hint"), ["end it first"]);
});

test("an unexpected error becomes INTERNAL without leaking its message", (t) => {
  const e = toServiceError(new TypeError("secret token abc123 in a stack"));
  t.is(e.code, status.INTERNAL);
  t.false(e.details!.includes("abc123"));
});

test("unary() answers with the handler's value or its mapped error", async (t) => {
  const ok = await new Promise((resolve) =>
    unary(() => ({ x: 1 }))({ request: {} } as ServerUnaryCall<object, object>, (err, res) => resolve([err, res])),
  );
  t.deepEqual(ok, [null, { x: 1 }]);
  const failed = await new Promise<any>((resolve) =>
    unary(async () => {
      throw new AppError(Code.NotFound, "no such window");
    })({ request: {} } as ServerUnaryCall<object, object>, (err) => resolve(err)),
  );
  t.is(failed.code, status.NOT_FOUND);
});
