/**
 * Opaque bearer tokens: CARBONMON_AUTH_TOKENS_FILE holds only their SHA-256 hashes, with a name and
 * scopes. A presented token is hashed and compared with every entry in constant time (no early exit, no
 * map lookup keyed by attacker input). Errors name the file and the entry, never a token or a hash.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { AppError, Code } from "../errors.js";
import type { Principal } from "./principal.js";
import { isScope, SCOPES, type Scope } from "./scopes.js";

/** Token names: what logs and window ownership show. */
export const PRINCIPAL_NAME = /^[A-Za-z0-9._@:-]{1,64}$/;

interface Entry {
  hash: Buffer;
  principal: Principal;
}

export function sha256Hex(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A new token: 32 random bytes, base64url, with a prefix that secret scanners can recognise. */
export function newToken(): string {
  return `cmt_${randomBytes(32).toString("base64url")}`;
}

export class TokenTable {
  private constructor(private readonly entries: readonly Entry[]) {}

  get size(): number {
    return this.entries.length;
  }

  /** Reads and validates the tokens file; throws an AppError naming the file and what is wrong. */
  static load(path: string): TokenTable {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new AppError(
        Code.FailedPrecondition,
        `CARBONMON_AUTH_TOKENS_FILE ${JSON.stringify(path)}: cannot read it (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      );
    }
    return TokenTable.parse(text, path);
  }

  static parse(text: string, path: string): TokenTable {
    const bad = (why: string): never => {
      throw new AppError(Code.FailedPrecondition, `CARBONMON_AUTH_TOKENS_FILE ${JSON.stringify(path)}: ${why}`, {
        hint: 'expected {"tokens":[{"name":"scheduler","sha256":"<64 hex digits>","scopes":["windows:write"]}]}; `carbonmon token new` prints entries',
      });
    };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return bad("not JSON");
    }
    const tokens = (json as { tokens?: unknown })?.tokens;
    if (!Array.isArray(tokens)) return bad('no "tokens" list');
    const names = new Set<string>();
    const hashes = new Set<string>();
    const entries = tokens.map((t: unknown, i): Entry => {
      const e = t as { name?: unknown; sha256?: unknown; scopes?: unknown };
      if (typeof e?.name !== "string" || !PRINCIPAL_NAME.test(e.name))
        bad(`tokens[${i}].name: expected 1-64 characters of [A-Za-z0-9._@:-]`);
      const name = e.name as string;
      if (typeof e.sha256 !== "string" || !/^[0-9a-f]{64}$/i.test(e.sha256))
        bad(`tokens[${i}] (${name}).sha256: expected 64 hex digits (the SHA-256 of the token)`);
      if (!Array.isArray(e.scopes) || e.scopes.some((s) => typeof s !== "string" || !isScope(s))) {
        bad(`tokens[${i}] (${name}).scopes: expected a list of ${SCOPES.join(", ")}`);
      }
      if (names.has(name)) bad(`tokens[${i}]: the name ${name} is used twice`);
      const hex = (e.sha256 as string).toLowerCase();
      if (hashes.has(hex)) bad(`tokens[${i}] (${name}): the same token hash appears twice`);
      names.add(name);
      hashes.add(hex);
      return { hash: Buffer.from(hex, "hex"), principal: Object.freeze({ name, scopes: new Set(e.scopes as Scope[]) }) };
    });
    return new TokenTable(entries);
  }

  /** The principal of a token, or undefined. Time does not depend on which entry (if any) matches. */
  verify(token: string): Principal | undefined {
    const hash = createHash("sha256").update(token, "utf8").digest();
    let found: Principal | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(hash, e.hash) && found === undefined) found = e.principal;
    }
    return found;
  }
}
