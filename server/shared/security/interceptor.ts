/**
 * The auth interceptor every call goes through (serve installs it): reads `authorization: Bearer <token>`,
 * finds the principal, checks the method's scope (scopes.ts) and attaches the principal for the handler
 * (principal.ts). A missing or unknown token: UNAUTHENTICATED; a known one without the scope:
 * PERMISSION_DENIED naming the scope. Every denied call, here or in a handler (another principal's
 * window), is logged once at warn with the principal's name, the method and the reason; never the token.
 */
import { Metadata, ServerInterceptingCall, status, type ServerInterceptor } from "@grpc/grpc-js";
import type { Logger } from "../log.js";
import type { Authentication, Authenticator } from "./authenticator.js";
import { ANONYMOUS, attachPrincipal, NOBODY, type Principal } from "./principal.js";
import { requirementOf } from "./scopes.js";

type Decision = { principal: Principal } | { code: status; details: string; principal: Principal | undefined };

const method = (path: string): string => path.slice(path.lastIndexOf("/") + 1) || path;

function bearerOf(metadata: Metadata): string | undefined {
  const values = metadata.get("authorization");
  if (values.length !== 1 || typeof values[0] !== "string") return undefined;
  const m = /^Bearer +(\S+)\s*$/i.exec(values[0]);
  return m?.[1];
}

function authorise(path: string, auth: Authentication): Decision {
  if ("rejected" in auth)
    return {
      code: status.UNAUTHENTICATED,
      details: `${auth.rejected}: send a valid token (authorization: Bearer <token>)`,
      principal: undefined,
    };
  const need = requirementOf(path);
  if (need === undefined) return { code: status.PERMISSION_DENIED, details: `no scope grants ${path}`, principal: auth };
  if (need.open || need.anyOf.some((s) => auth.scopes.has(s))) return { principal: auth };
  const others = need.anyOf.length > 1 ? ` (or ${need.anyOf.slice(1).join(", ")})` : "";
  return {
    code: status.PERMISSION_DENIED,
    details: `${method(path)} needs scope ${need.anyOf[0]}${others}; token '${auth.name}' lacks it`,
    principal: auth,
  };
}

/** What to do with a call, before its handler runs: synchronous unless a JWT must be verified. */
function decide(path: string, metadata: Metadata, auth: Authenticator | undefined): Decision | Promise<Decision> {
  const need = requirementOf(path);
  if (need?.open) return { principal: NOBODY };
  if (auth === undefined) return { principal: ANONYMOUS };
  const bearer = bearerOf(metadata);
  if (bearer === undefined)
    return {
      code: status.UNAUTHENTICATED,
      details: "this service needs a token: send authorization: Bearer <token> metadata",
      principal: undefined,
    };
  const found = auth.authenticate(bearer);
  return found instanceof Promise ? found.then((a) => authorise(path, a)) : authorise(path, found);
}

export function authInterceptor(auth: Authenticator | undefined, log: Logger): ServerInterceptor {
  return (descriptor, call) => {
    const path = descriptor.path;
    let principal: Principal | undefined;
    const intercepted: ServerInterceptingCall = new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, passOn) => {
            const apply = (d: Decision): void => {
              principal = d.principal;
              if ("code" in d) return intercepted.sendStatus({ code: d.code, details: d.details, metadata: new Metadata() });
              metadata.remove("authorization"); // handlers never see the token
              attachPrincipal(metadata, d.principal);
              passOn(metadata);
            };
            const d = decide(path, metadata, auth);
            if (d instanceof Promise)
              d.then(apply, () => apply({ code: status.UNAUTHENTICATED, details: "token could not be verified", principal: undefined }));
            else apply(d);
          },
        }),
      sendStatus: (s, next) => {
        if (s.code === status.PERMISSION_DENIED || s.code === status.UNAUTHENTICATED) {
          log.warn({ principal: principal?.name || "(none)", method: path, code: status[s.code!], reason: s.details }, "call denied");
        }
        next(s);
      },
    });
    return intercepted;
  };
}
