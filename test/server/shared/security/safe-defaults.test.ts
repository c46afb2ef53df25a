/** Safe defaults: no insecure listening beyond loopback, no secrets on the command line, tokens files checked. */
import test from "ava";
import { ConfigError, helpText, loadAgentConfig, loadIntensityConfig, type SecurityConfig } from "../../../../server/shared/config.js";
import { createServerSecurity, InsecureListenError, isLoopback } from "../../../../server/shared/security/server-security.js";
import { TokenTable } from "../../../../server/shared/security/tokens.js";
import { carbonmon } from "../../../bin/cli-process.js";
import { capturingLogger } from "../../../helpers/security.js";

const NONE: SecurityConfig = {
  tlsCertFile: undefined,
  tlsKeyFile: undefined,
  tlsClientCaFile: undefined,
  authTokensFile: undefined,
  jwksFile: undefined,
  jwtIssuer: undefined,
  jwtAudience: undefined,
  insecure: false,
};

test("loopback addresses", (t) => {
  for (const a of ["127.0.0.1:1", "127.3.2.1:50051", "localhost:50051", "[::1]:50051"]) t.true(isLoopback(a), a);
  for (const a of ["0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "agent.example:50051", "127.0.0.1.example:1"])
    t.false(isLoopback(a), a);
});

test("a non-loopback address without TLS and authentication is refused, saying what to set; CARBONMON_INSECURE=true serves with a warning", (t) => {
  const { log, lines } = capturingLogger();
  const err = t.throws(() => createServerSecurity(NONE, "0.0.0.0:50051", log), { instanceOf: InsecureListenError })!;
  t.false(err.message.includes("\n"));
  t.regex(
    err.message,
    /refusing to listen on 0\.0\.0\.0:50051 without TLS and authentication: set CARBONMON_TLS_CERT_FILE and CARBONMON_TLS_KEY_FILE, and CARBONMON_AUTH_TOKENS_FILE/,
  );
  t.regex(t.throws(() => createServerSecurity({ ...NONE, authTokensFile: "/nonexistent" }, "10.1.2.3:1", log))!.message, /without TLS:/);
  t.notThrows(() => createServerSecurity(NONE, "127.0.0.1:50051", log), "loopback needs neither");
  createServerSecurity({ ...NONE, insecure: true }, "0.0.0.0:50051", log);
  t.true(lines.some((l) => l.level === 40 && /without TLS and authentication \(CARBONMON_INSECURE=true\)/.test(String(l.msg))));
});

test("the CLI refuses with exit 2 and one line; --insecure is a bare switch", async (t) => {
  const r = await carbonmon(["agent", "--listen", "0.0.0.0:0"]);
  t.is(r.code, 2);
  t.is(r.stderr.trim().split("\n").length, 1, r.stderr);
  t.regex(r.stderr, /^carbonmon: refusing to listen on 0\.0\.0\.0:0 without TLS and authentication: set CARBONMON_TLS_CERT_FILE/);
  t.true(loadAgentConfig({ env: {}, argv: ["--insecure"] }).security.insecure);
  t.true(loadAgentConfig({ env: {}, argv: ["--insecure", "--listen", "127.0.0.1:1"] }).security.insecure);
  t.false(loadAgentConfig({ env: {} }).security.insecure);
});

test("secret flags are refused with a hint to the file form, without echoing the value; --help shows no flag for them", (t) => {
  const err = t.throws(
    () =>
      loadIntensityConfig({
        env: {},
        argv: ["--electricitymaps-api-token", "SEKRIT-1", "--watttime-password=SEKRIT-2", "--watttime-username", "SEKRIT-3"],
      }),
    { instanceOf: ConfigError },
  ) as ConfigError;
  t.is(err.problems.length, 3);
  t.regex(
    err.problems[0]!,
    /--electricitymaps-api-token: secrets are not accepted on the command line .*set ELECTRICITYMAPS_API_TOKEN_FILE/,
  );
  t.false(err.message.includes("SEKRIT"));
  const help = helpText("intensity");
  t.false(help.includes("--electricitymaps-api-token"));
  t.regex(help, /ELECTRICITYMAPS_API_TOKEN_FILE or ELECTRICITYMAPS_API_TOKEN/);
});

test("security settings that only work together are checked at start", (t) => {
  const problems = (env: Record<string, string>) => {
    try {
      loadAgentConfig({ env });
      return [];
    } catch (err) {
      return (err as ConfigError).problems;
    }
  };
  t.deepEqual(problems({ CARBONMON_TLS_CERT_FILE: "/c" }), ["CARBONMON_TLS_CERT_FILE and CARBONMON_TLS_KEY_FILE: set both or neither"]);
  t.regex(problems({ CARBONMON_TLS_CLIENT_CA_FILE: "/ca" })[0]!, /mutual TLS needs TLS/);
  t.regex(problems({ CARBONMON_AUTH_JWKS_FILE: "/j" })[0]!, /set all three or none/);
  t.regex(problems({ CARBONMON_INTENSITY_TLS_CERT_FILE: "/c" })[0]!, /set both or neither/);
});

test("tokens files: hashes compared, names and scopes validated, errors never quote a token or hash", (t) => {
  const hash = "a".repeat(64);
  const bad = (text: string) => t.throws(() => TokenTable.parse(text, "/etc/carbonmon/tokens.json"))!.message;
  t.regex(bad("{"), /tokens\.json": not JSON/);
  t.regex(
    bad(JSON.stringify({ tokens: [{ name: "x", sha256: hash, scopes: ["windows:everything"] }] })),
    /tokens\[0\] \(x\)\.scopes: expected a list of windows:read/,
  );
  t.regex(bad(JSON.stringify({ tokens: [{ name: "x", sha256: "zz", scopes: [] }] })), /sha256: expected 64 hex digits/);
  t.regex(
    bad(
      JSON.stringify({
        tokens: [
          { name: "x", sha256: hash, scopes: [] },
          { name: "y", sha256: hash, scopes: [] },
        ],
      }),
    ),
    /same token hash appears twice/,
  );
  t.false(
    bad(
      JSON.stringify({
        tokens: [
          { name: "x", sha256: hash, scopes: [] },
          { name: "y", sha256: hash, scopes: [] },
        ],
      }),
    ).includes(hash),
  );
});

test("carbonmon token new prints the token once and a tokens-file entry that accepts it", async (t) => {
  const r = await carbonmon(["token", "new", "--name", "scheduler", "--scopes", "windows:write,windows:read"]);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  const token = lines.find((l) => l.startsWith("cmt_"))!;
  const entry = lines.find((l) => l.startsWith("{"))!;
  t.is(r.stdout.split(token).length, 2, "printed once");
  t.false(entry.includes(token));
  const table = TokenTable.parse(JSON.stringify({ tokens: [JSON.parse(entry)] }), "tokens.json");
  const p = table.verify(token)!;
  t.is(p.name, "scheduler");
  t.deepEqual([...p.scopes].sort(), ["windows:read", "windows:write"]);
  t.is(table.verify(`${token}x`), undefined);
  const wrong = await carbonmon(["token", "new", "--name", "s", "--scopes", "windows:root"]);
  t.is(wrong.code, 2);
  t.regex(wrong.stderr, /unknown: windows:root/);
});

test("every RPC of both services needs a scope; only health checking is open; unknown methods are refused", async (t) => {
  const { EnergyMonitorService } = await import("../../../../proto/gen/carbonmon/agent/v1/agent.js");
  const { CarbonIntensityService } = await import("../../../../proto/gen/carbonmon/intensity/v1/intensity.js");
  const { requirementOf } = await import("../../../../server/shared/security/scopes.js");
  for (const def of [...Object.values(EnergyMonitorService), ...Object.values(CarbonIntensityService)]) {
    const need = requirementOf(def.path);
    t.truthy(need, def.path);
    t.false(need!.open, `${def.path} is not open`);
  }
  t.true(requirementOf("/grpc.health.v1.Health/Check")!.open);
  t.true(requirementOf("/grpc.health.v1.Health/Watch")!.open);
  t.is(requirementOf("/carbonmon.agent.v1.EnergyMonitor/NewMethod"), undefined);
  t.is(requirementOf("/some.Other/Call"), undefined);
});
