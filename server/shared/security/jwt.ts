/**
 * JWTs from a site's identity provider, verified with jose against a local JWKS (public keys only):
 * signature, `iss`, `aud`, `exp` and `nbf` (30 s clock tolerance). The principal is `sub`; scopes come
 * from the `scope` claim (space-separated, RFC 8693) or a `scp` list; unknown scopes are ignored.
 * jose (~50 ms of CPU to load) is imported with the first JWT, not by every service that could take one.
 */
import { readFileSync } from "node:fs";
import type { JSONWebKeySet } from "jose";
import { AppError, Code } from "../errors.js";
import type { Principal } from "./principal.js";
import { isScope, type Scope } from "./scopes.js";
import { PRINCIPAL_NAME } from "./tokens.js";

export interface JwtSettings {
  jwksFile: string;
  issuer: string;
  audience: string;
}

/** Whether a bearer value looks like a JWT (three base64url parts) rather than an opaque token. */
export function looksLikeJwt(token: string): boolean {
  return /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

type Jose = typeof import("jose");
let jose: Promise<Jose> | undefined;
const loadJose = (): Promise<Jose> => (jose ??= import("jose"));

export class JwtVerifier {
  private keys: ReturnType<Jose["createLocalJWKSet"]> | undefined;

  private constructor(
    private readonly jwks: JSONWebKeySet,
    private readonly settings: JwtSettings,
  ) {}

  static load(settings: JwtSettings): JwtVerifier {
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(readFileSync(settings.jwksFile, "utf8")) as JSONWebKeySet;
      if (!Array.isArray(jwks?.keys)) throw new Error('no "keys" list');
      if (jwks.keys.some((k) => "d" in k)) throw new Error("it holds a private key: give the JWKS of public keys only");
      return new JwtVerifier(jwks, settings);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? (err instanceof SyntaxError ? "not JSON" : (err as Error).message);
      throw new AppError(Code.FailedPrecondition, `CARBONMON_AUTH_JWKS_FILE ${JSON.stringify(settings.jwksFile)}: ${why}`);
    }
  }

  /** The principal of a valid JWT; a reason (never the token) otherwise. */
  async verify(token: string): Promise<Principal | { rejected: string }> {
    const { createLocalJWKSet, errors, jwtVerify } = await loadJose();
    try {
      this.keys ??= createLocalJWKSet(this.jwks);
      const { payload } = await jwtVerify(token, this.keys, {
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        clockTolerance: 30,
        requiredClaims: ["sub", "exp"],
      });
      const sub = payload.sub ?? "";
      if (!PRINCIPAL_NAME.test(sub)) return { rejected: "JWT subject is not 1-64 characters of [A-Za-z0-9._@:-]" };
      const raw = typeof payload.scope === "string" ? payload.scope.split(" ") : Array.isArray(payload.scp) ? payload.scp : [];
      const scopes = new Set<Scope>(raw.filter((s): s is Scope => typeof s === "string" && isScope(s)));
      return { name: sub, scopes };
    } catch (err) {
      return { rejected: jwtReason(errors, err) };
    }
  }
}

/** jose's error as a short reason, without the token or its claims' values. */
function jwtReason(errors: Jose["errors"], err: unknown): string {
  if (err instanceof errors.JWTExpired) return "JWT expired";
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === "nbf") return "JWT not yet valid (nbf)";
    return `JWT claim ${err.claim} is not what this service accepts`;
  }
  if (err instanceof errors.JWKSNoMatchingKey) return "JWT signed by a key not in CARBONMON_AUTH_JWKS_FILE";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "JWT signature does not verify";
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return "JWT algorithm not accepted";
  return "JWT malformed";
}
