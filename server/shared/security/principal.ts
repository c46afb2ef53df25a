/**
 * Who is calling: the name of a token (or a JWT's subject) and its scopes. The auth interceptor attaches
 * the principal to the call's metadata object, which grpc-js hands to the handler; handlers read it with
 * principalOf. A client cannot forge it: it is not metadata, only keyed by the metadata object.
 */
import type { Metadata } from "@grpc/grpc-js";
import type { Scope } from "./scopes.js";

export interface Principal {
  /** "" when authentication is off (everyone is the same, unnamed, principal). */
  readonly name: string;
  readonly scopes: ReadonlySet<Scope>;
}

export const ANONYMOUS: Principal = Object.freeze({
  name: "",
  scopes: new Set<Scope>(["windows:read", "windows:write", "windows:admin", "intensity:read", "reflection"]),
});

const byMetadata = new WeakMap<Metadata, Principal>();

export function attachPrincipal(metadata: Metadata, principal: Principal): void {
  byMetadata.set(metadata, principal);
}

/** What a call that the interceptor never saw gets: no scopes, a name no token can have. Fails closed. */
export const NOBODY: Principal = Object.freeze({ name: "(unauthenticated)", scopes: new Set<Scope>() });

/** The caller of a call (its metadata), as the auth interceptor (always installed by serve) attached it. */
export function principalOf(call: { metadata: Metadata }): Principal {
  return byMetadata.get(call.metadata) ?? NOBODY;
}

/** Whether the principal may act on every principal's windows. */
export function isAdmin(p: Principal): boolean {
  return p.scopes.has("windows:admin");
}
