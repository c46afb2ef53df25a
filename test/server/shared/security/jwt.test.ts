/** JWTs from an identity provider: signature, issuer, audience, exp and nbf checked; scopes from `scope`. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { createAgentClient, type CarbonmonClientError } from "../../../../client/index.js";
import { startAgent } from "../../../../server/agent/main.js";
import { loadAgentConfig } from "../../../../server/shared/config.js";
import { tempDataDir } from "../../../helpers/grpc.js";
import { capturingLogger } from "../../../helpers/security.js";

const ISSUER = "https://idp.example.test";
const AUDIENCE = "carbonmon";

test("valid JWTs are accepted with their scopes; expired, not-yet-valid, wrong issuer, wrong audience and unknown key are UNAUTHENTICATED", async (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const site = await generateKeyPair("ES256");
  const stranger = await generateKeyPair("ES256");
  const jwks = join(data.dir, "jwks.json");
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(site.publicKey)), kid: "site-1", alg: "ES256" }] }));
  const captured = capturingLogger();
  const config = loadAgentConfig({
    env: {
      CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
      CARBONMON_DATA_DIR: data.dir,
      CARBONMON_NVML_LIBRARY: "/nonexistent/libnvidia-ml.so.1",
      CARBONMON_POWERCAP_ROOT: `${data.dir}/no-powercap`,
      CARBONMON_SIMULATED_GPU: "true",
      CARBONMON_AUTH_JWKS_FILE: jwks,
      CARBONMON_AUTH_JWT_ISSUER: ISSUER,
      CARBONMON_AUTH_JWT_AUDIENCE: AUDIENCE,
    },
  });
  const agent = await startAgent(config, captured.log);
  t.teardown(() => agent.running.shutdown(1000));

  const now = Math.floor(Date.now() / 1000);
  const jwt = (claims: Record<string, unknown>, o: { key?: CryptoKey; iss?: string; aud?: string; exp?: number; nbf?: number } = {}) => {
    let b = new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid: "site-1" })
      .setSubject("scheduler")
      .setIssuer(o.iss ?? ISSUER)
      .setAudience(o.aud ?? AUDIENCE)
      .setExpirationTime(o.exp ?? now + 600)
      .setIssuedAt(now - 10);
    if (o.nbf !== undefined) b = b.setNotBefore(o.nbf);
    return b.sign(o.key ?? site.privateKey);
  };
  const codeWith = async (token: string, call: "getHost" | "beginWindow" = "getHost") => {
    const c = createAgentClient(agent.running.address, { retries: 0, security: { token } });
    try {
      await (call === "getHost" ? c.getHost() : c.beginWindow(`jwt-${Math.random().toString(36).slice(2)}`));
      return "OK";
    } catch (e) {
      return `${(e as CarbonmonClientError).codeName}: ${(e as CarbonmonClientError).details}`;
    } finally {
      c.close();
    }
  };

  t.is(await codeWith(await jwt({ scope: "windows:read windows:write" })), "OK");
  t.is(await codeWith(await jwt({ scope: "windows:read windows:write" }), "beginWindow"), "OK");
  t.regex(await codeWith(await jwt({ scope: "windows:read" }), "beginWindow"), /^PERMISSION_DENIED: BeginWindow needs scope windows:write/);
  t.regex(await codeWith(await jwt({ scope: "windows:read" }, { exp: now - 3600 })), /^UNAUTHENTICATED: JWT expired/);
  t.regex(await codeWith(await jwt({ scope: "windows:read" }, { nbf: now + 3600 })), /^UNAUTHENTICATED: JWT not yet valid/);
  t.regex(await codeWith(await jwt({ scope: "windows:read" }, { iss: "https://evil.example.test" })), /^UNAUTHENTICATED: JWT claim iss/);
  t.regex(await codeWith(await jwt({ scope: "windows:read" }, { aud: "someone-else" })), /^UNAUTHENTICATED: JWT claim aud/);
  t.regex(
    await codeWith(await jwt({ scope: "windows:read" }, { key: stranger.privateKey })),
    /^UNAUTHENTICATED: JWT signature does not verify/,
  );
  const good = await jwt({ scope: "windows:read" });
  t.regex(await codeWith(`${good.slice(0, -4)}AAAA`), /^UNAUTHENTICATED/, "a tampered signature");
  // The JWT itself never reaches the log.
  t.false(captured.text().includes(good.split(".")[2]!));
  t.true(
    captured.lines.some(
      (l) => l.msg === "call denied" && l.principal === "scheduler" && l.method === "/carbonmon.agent.v1.EnergyMonitor/BeginWindow",
    ),
  );
});
