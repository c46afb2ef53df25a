/**
 * TLS and mutual TLS with certificates made by openssl at test time: the right CA, a wrong CA, no client
 * certificate, a client certificate from another CA; certificates reloaded with a stream open (in process,
 * and with a real SIGHUP); the agent pricing over mutual TLS with a token; the CLI's --tls-ca/--token-file.
 */
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test, { type ExecutionContext } from "ava";
import { createAgentClient, createIntensityClient, type CarbonmonClientError, type ClientSecurityOptions } from "../../client/index.js";
import { startAgent } from "../../server/agent/main.js";
import { startIntensity } from "../../server/intensity/main.js";
import { loadAgentConfig, loadIntensityConfig } from "../../server/shared/config.js";
import { carbonmon, start, until } from "../bin/cli-process.js";
import { makePki } from "../helpers/certs.js";
import { tempDataDir } from "../helpers/grpc.js";
import { capturingLogger, writeTokens } from "../helpers/security.js";

function setup(t: ExecutionContext) {
  const pki = makePki();
  const data = tempDataDir();
  t.teardown(() => {
    pki.cleanup();
    data.cleanup();
  });
  const ca1 = pki.ca("ca1");
  const ca2 = pki.ca("ca2");
  const server1 = pki.issue(ca1, "server1", "server");
  const server2 = pki.issue(ca2, "server2", "server");
  // The files the service reads; reloads copy other certificates over them.
  const live = { cert: join(pki.dir, "live.pem"), key: join(pki.dir, "live.key") };
  copyFileSync(server1.cert, live.cert);
  copyFileSync(server1.key, live.key);
  const { file: tokensFile, token } = writeTokens(data.dir, { ops: ["windows:read", "windows:write", "intensity:read"] });
  return { pki, data, ca1, ca2, server1, server2, live, tokensFile, token };
}

async function agent(t: ExecutionContext, s: ReturnType<typeof setup>, env: Record<string, string> = {}) {
  const captured = capturingLogger();
  const config = loadAgentConfig({
    env: {
      CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
      CARBONMON_DATA_DIR: s.data.dir,
      CARBONMON_NVML_LIBRARY: "/nonexistent/libnvidia-ml.so.1",
      CARBONMON_POWERCAP_ROOT: `${s.data.dir}/no-powercap`,
      CARBONMON_SIMULATED_GPU: "true",
      CARBONMON_TLS_CERT_FILE: s.live.cert,
      CARBONMON_TLS_KEY_FILE: s.live.key,
      CARBONMON_AUTH_TOKENS_FILE: s.tokensFile,
      ...env,
    },
  });
  const a = await startAgent(config, captured.log);
  t.teardown(() => a.running.shutdown(1000));
  return { ...a, captured };
}

async function outcome(address: string, security: ClientSecurityOptions): Promise<string> {
  const c = createAgentClient(address, { retries: 0, deadlineMs: 5000, security });
  try {
    await c.getHost();
    return "OK";
  } catch (err) {
    return (err as CarbonmonClientError).codeName;
  } finally {
    c.close();
  }
}

const pem = (path: string): Buffer => readFileSync(path);

test("TLS: clients that trust the service's CA get in; a wrong CA or plaintext does not", async (t) => {
  const s = setup(t);
  const a = await agent(t, s);
  const address = a.running.address;
  t.is(await outcome(address, { tls: { ca: pem(s.ca1.cert) }, token: s.token.ops }), "OK");
  t.is(await outcome(address, { tls: { ca: pem(s.ca2.cert) }, token: s.token.ops }), "UNAVAILABLE", "wrong CA");
  t.is(await outcome(address, { token: s.token.ops }), "UNAVAILABLE", "plaintext to a TLS port");
  t.is(await outcome(address, { tls: { ca: pem(s.ca1.cert) } }), "UNAUTHENTICATED", "TLS alone is no token");
});

test("mutual TLS: no client certificate, or one from another CA, is refused; one from the client CA gets in", async (t) => {
  const s = setup(t);
  const client1 = s.pki.issue(s.ca1, "client1", "client");
  const client2 = s.pki.issue(s.ca2, "client2", "client");
  const a = await agent(t, s, { CARBONMON_TLS_CLIENT_CA_FILE: s.ca1.cert });
  const address = a.running.address;
  const tls = (cert?: { cert: string; key: string }) => ({
    ca: pem(s.ca1.cert),
    ...(cert ? { cert: pem(cert.cert), key: pem(cert.key) } : {}),
  });
  t.is(await outcome(address, { tls: tls(), token: s.token.ops }), "UNAVAILABLE", "no client certificate");
  t.is(await outcome(address, { tls: tls(client2), token: s.token.ops }), "UNAVAILABLE", "a client certificate from another CA");
  t.is(await outcome(address, { tls: tls(client1), token: s.token.ops }), "OK");
});

test("reload: new certificates for new connections, an open WatchPower stream keeps flowing; unreadable files keep the old ones", async (t) => {
  const s = setup(t);
  const a = await agent(t, s);
  const address = a.running.address;
  const watcher = createAgentClient(address, { retries: 0, security: { tls: { ca: pem(s.ca1.cert) }, token: s.token.ops } });
  t.teardown(() => watcher.close());
  const samples = watcher.watchPower({ periodMs: 100 })[Symbol.asyncIterator]();
  t.truthy((await samples.next()).value);

  copyFileSync(s.server2.cert, s.live.cert);
  copyFileSync(s.server2.key, s.live.key);
  a.running.reload(); // what SIGHUP calls
  t.true(a.captured.lines.some((l) => l.msg === "certificates and tokens reloaded"));
  const before = (await samples.next()).value!.sequence;
  const after = (await samples.next()).value!.sequence;
  t.true(after > before, "the stream opened before the reload still delivers");
  t.is(await outcome(address, { tls: { ca: pem(s.ca2.cert) }, token: s.token.ops }), "OK", "new connections see the new certificate");
  t.is(await outcome(address, { tls: { ca: pem(s.ca1.cert) }, token: s.token.ops }), "UNAVAILABLE", "and no longer the old one");

  writeFileSync(s.live.cert, "not a certificate");
  a.running.reload();
  t.true(a.captured.lines.some((l) => l.msg === "reload failed; the previous certificates or tokens stay in force"));
  t.is(await outcome(address, { tls: { ca: pem(s.ca2.cert) }, token: s.token.ops }), "OK", "the last good certificates stay");
  await samples.return?.(undefined);
});

test("a real SIGHUP makes a running service re-read its certificates", async (t) => {
  const s = setup(t);
  const service = start(["intensity"], {
    CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
    CARBONMON_DATA_DIR: s.data.dir,
    CARBONMON_LOG_LEVEL: "info",
    CARBONMON_PROVIDERS: "offline",
    CARBONMON_TLS_CERT_FILE: s.live.cert,
    CARBONMON_TLS_KEY_FILE: s.live.key,
    CARBONMON_AUTH_TOKENS_FILE: s.tokensFile,
  });
  t.teardown(() => void service.kill("SIGKILL"));
  const up = await until(service, (f) => /"msg":"listening"/.test(f.stderr));
  const address = /"address":"([^"]+)"/.exec(up.stderr)![1]!;
  const providers = async (ca: string) => {
    const c = createIntensityClient(address, { retries: 0, security: { tls: { ca: pem(ca) }, token: s.token.ops } });
    try {
      return (await c.listProviders()).length > 0 ? "OK" : "empty";
    } catch (err) {
      return (err as CarbonmonClientError).codeName;
    } finally {
      c.close();
    }
  };
  t.is(await providers(s.ca1.cert), "OK");
  copyFileSync(s.server2.cert, s.live.cert);
  copyFileSync(s.server2.key, s.live.key);
  service.kill("SIGHUP");
  await until(service, (f) => /certificates and tokens reloaded/.test(f.stderr));
  t.is(await providers(s.ca2.cert), "OK");
  t.is(await providers(s.ca1.cert), "UNAVAILABLE");
  service.kill("SIGTERM");
  t.is((await service.done).code, 0, "SIGHUP did not stop it; SIGTERM did, cleanly");
});

test("the agent prices windows through an intensity service that needs mutual TLS and a token", async (t) => {
  const s = setup(t);
  const agentCert = s.pki.issue(s.ca1, "agent-client", "client");
  const { file: intensityTokens, token } = writeTokens(s.data.dir, { "agent-host-1": ["intensity:read"] }, "intensity-tokens.json");
  const tokenFile = join(s.data.dir, "agent-token");
  writeFileSync(tokenFile, `${token["agent-host-1"]}\n`);
  const intensityData = tempDataDir();
  t.teardown(intensityData.cleanup);
  const intensity = await startIntensity(
    loadIntensityConfig({
      env: {
        CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
        CARBONMON_DATA_DIR: intensityData.dir,
        CARBONMON_PROVIDERS: "static",
        CARBONMON_INTENSITY_CONSTANTS: "DE=300",
        CARBONMON_TLS_CERT_FILE: s.server1.cert,
        CARBONMON_TLS_KEY_FILE: s.server1.key,
        CARBONMON_TLS_CLIENT_CA_FILE: s.ca1.cert,
        CARBONMON_AUTH_TOKENS_FILE: intensityTokens,
      },
    }),
    capturingLogger().log,
  );
  t.teardown(() => intensity.running.shutdown(1000));
  const a = await agent(t, s, {
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_LOCATION: "DE",
    CARBONMON_INTENSITY_TLS_CA_FILE: s.ca1.cert,
    CARBONMON_INTENSITY_TLS_CERT_FILE: agentCert.cert,
    CARBONMON_INTENSITY_TLS_KEY_FILE: agentCert.key,
    CARBONMON_INTENSITY_TOKEN_FILE: tokenFile,
  });
  const c = createAgentClient(a.running.address, { retries: 0, security: { tls: { ca: pem(s.ca1.cert) }, token: s.token.ops } });
  t.teardown(() => c.close());
  await c.beginWindow("priced");
  const m = await c.endWindow("priced", { waitForCounterUpdate: true });
  const mm = m.measurement;
  t.is(mm.carbonPeriods[0]?.intensity?.gPerKwh, 300, `${mm.carbonStatus}: ${mm.carbonStatusReason}`);
});

test("the compose health check probes a TLS service (no token, no certificate check on loopback)", async (t) => {
  const s = setup(t);
  const a = await agent(t, s);
  const { parse } = await import("yaml");
  const compose = parse(readFileSync(new URL("../../docker-compose.yml", import.meta.url), "utf8")) as {
    services: Record<string, { healthcheck: { test: string[] } }>;
  };
  const script = compose.services.agent!.healthcheck.test[3]!;
  const { execFile } = await import("node:child_process");
  const probe = (env: Record<string, string>) =>
    new Promise<number>((resolve) => {
      const child = execFile(process.execPath, ["-e", script, a.running.address], {
        cwd: new URL("../..", import.meta.url),
        env: { ...process.env, ...env },
        timeout: 20_000,
      });
      child.on("exit", (code) => resolve(code ?? -1));
    });
  t.is(await probe({ CARBONMON_TLS_CERT_FILE: s.live.cert }), 0);
  t.not(await probe({ CARBONMON_TLS_CERT_FILE: "" }), 0, "a plaintext probe fails against TLS");
});

test("the CLI speaks TLS with --tls-ca and sends --token-file; CARBONMON_CLIENT_TLS_CA_FILE / CARBONMON_TOKEN_FILE do the same", async (t) => {
  const s = setup(t);
  const a = await agent(t, s);
  const tokenFile = join(s.data.dir, "token");
  writeFileSync(tokenFile, `${s.token.ops}\n`);
  const ok = await carbonmon(["host", "--agent", a.running.address, "--tls-ca", s.ca1.cert, "--token-file", tokenFile, "--json"]);
  t.is(ok.code, 0, ok.stderr);
  t.truthy(JSON.parse(ok.stdout).hostname);
  const env = await carbonmon(["windows", "--agent", a.running.address], {
    CARBONMON_CLIENT_TLS_CA_FILE: s.ca1.cert,
    CARBONMON_TOKEN_FILE: tokenFile,
  });
  t.is(env.code, 0, env.stderr);
  const plain = await carbonmon(["host", "--agent", a.running.address, "--token-file", tokenFile]);
  t.is(plain.code, 1);
  t.regex(plain.stderr, /cannot reach the agent/);
  const noToken = await carbonmon(["host", "--agent", a.running.address, "--tls-ca", s.ca1.cert]);
  t.regex(noToken.stderr, /UNAUTHENTICATED/);
  t.false(noToken.stderr.includes(s.token.ops!) || ok.stderr.includes(s.token.ops!));
});
