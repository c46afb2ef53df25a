/**
 * Who a bearer value belongs to: an opaque token from the tokens file, or a JWT from the identity
 * provider. Both sources are re-read by reload() (SIGHUP); a reload that fails keeps the previous ones.
 */
import { AppError } from "../errors.js";
import type { SecurityConfig } from "../config.js";
import { JwtVerifier, looksLikeJwt } from "./jwt.js";
import type { Principal } from "./principal.js";
import { TokenTable } from "./tokens.js";

export type Authentication = Principal | { rejected: string };

export class Authenticator {
  private tokens: TokenTable | undefined;
  private jwt: JwtVerifier | undefined;

  /** Throws an AppError naming the file when a source cannot be read. */
  constructor(private readonly config: SecurityConfig) {
    this.load();
  }

  /** Whether any source is configured (else every caller is ANONYMOUS). */
  static enabled(config: SecurityConfig): boolean {
    return config.authTokensFile !== undefined || config.jwksFile !== undefined;
  }

  private load(): void {
    const c = this.config;
    const tokens = c.authTokensFile === undefined ? undefined : TokenTable.load(c.authTokensFile);
    const jwt =
      c.jwksFile === undefined
        ? undefined
        : JwtVerifier.load({ jwksFile: c.jwksFile, issuer: c.jwtIssuer ?? "", audience: c.jwtAudience ?? "" });
    this.tokens = tokens;
    this.jwt = jwt;
  }

  /** Re-reads the files; on failure the previous ones stay in force and the error is returned. */
  reload(): AppError | undefined {
    try {
      this.load();
      return undefined;
    } catch (err) {
      return AppError.from(err);
    }
  }

  get tokenCount(): number {
    return this.tokens?.size ?? 0;
  }

  /** Synchronous for opaque tokens (the common case costs one SHA-256), a promise for JWTs. */
  authenticate(bearer: string): Authentication | Promise<Authentication> {
    if (this.jwt && looksLikeJwt(bearer)) return this.jwt.verify(bearer);
    return this.tokens?.verify(bearer) ?? { rejected: "unknown token" };
  }
}
