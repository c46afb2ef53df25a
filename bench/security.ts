/**
 * What security costs on the window path: BeginWindow + EndWindow (one pair, sequential, client-observed)
 * against three agents started side by side in this process, each with its own client and connection:
 *   plaintext            no TLS, no auth (the baseline for TLS)
 *   TLS                  TLS, no auth (the baseline for auth)
 *   TLS + token          TLS and a scoped bearer token (the auth interceptor: one SHA-256 and a scope check)
 * Pairs run in blocks, rotating over the three, after a warm-up, so that drift hits all alike.
 * Targets: p50 (TLS + token) / p50 (TLS) ≤ 1.10; TLS / plaintext is reported.
 * Certificates come from openssl (a CA and a server certificate for 127.0.0.1); without openssl: skipped.
 *
 *   node --import tsx bench/security.ts --seconds 5
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { credentials, type ChannelCredentials, type Client, type ServiceError } from "@grpc/grpc-js";
import { tokenInterceptor } from "../client/security.js";
import { EnergyMonitorClient } from "../proto/gen/carbonmon/agent/v1/agent.js";
import { startAgent, type Agent } from "../server/agent/main.js";
import { loadAgentConfig } from "../server/shared/config.js";
import { silentLogger } from "../server/shared/log.js";
import { makePki } from "../test/helpers/certs.js";
import { tempDataDir } from "../test/helpers/grpc.js";
import { writeTokens } from "../test/helpers/security.js";
import { f, parseSeconds, runBenchmark, stats, table, verdict } from "./lib.js";

const BLOCK = 20;
const WARMUP_PAIRS = 300;
const TARGET_AUTH_RATIO = 1.1;

type Callback = (err: ServiceError | null) => void;

function pairMs(client: EnergyMonitorClient, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    client.beginWindow(
      { key, gpuIndices: [], cpuIndices: [], labels: {}, skipGpus: false, skipCpus: false },
      (err: ServiceError | null) => {
        if (err) return reject(err);
        client.endWindow({ key, waitForCounterUpdate: false }, ((e: ServiceError | null) =>
          e ? reject(e) : resolve(performance.now() - t0)) as Callback);
      },
    );
  });
}

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

interface Setup {
  name: string;
  agent: Agent;
  client: EnergyMonitorClient;
  samples: number[];
}

async function main(): Promise<number> {
  const seconds = parseSeconds();
  if (!hasOpenssl()) {
    console.log("openssl not found: the TLS benchmarks need it for test certificates; skipped");
    return 0;
  }
  const data = tempDataDir();
  const pki = makePki();
  const ca = pki.ca("bench-ca");
  const server = pki.issue(ca, "bench-server", "server");
  const { file: tokensFile, token } = writeTokens(data.dir, { bench: ["windows:read", "windows:write"] });
  const tlsEnv = { CARBONMON_TLS_CERT_FILE: server.cert, CARBONMON_TLS_KEY_FILE: server.key };
  const tls = credentials.createSsl(readFileSync(ca.cert));
  const setups: Setup[] = [];
  const start = async (name: string, env: Record<string, string>, creds: ChannelCredentials, bearer?: string): Promise<void> => {
    const dir = join(data.dir, name.replace(/\W+/g, "-"));
    const config = loadAgentConfig({
      env: {
        CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
        CARBONMON_DATA_DIR: dir,
        CARBONMON_NVML_LIBRARY: "/nonexistent/libnvidia-ml.so.1",
        CARBONMON_POWERCAP_ROOT: join(dir, "no-powercap"),
        CARBONMON_SIMULATED_GPU: "true",
        ...env,
      },
    });
    const agent = await startAgent(config, silentLogger());
    const client = new EnergyMonitorClient(agent.running.address, creds, bearer ? { interceptors: [tokenInterceptor(bearer)] } : {});
    setups.push({ name, agent, client, samples: [] });
  };
  try {
    await start("plaintext", {}, credentials.createInsecure());
    await start("TLS", tlsEnv, tls);
    await start("TLS + token", { ...tlsEnv, CARBONMON_AUTH_TOKENS_FILE: tokensFile }, tls, token.bench);

    let n = 0;
    for (let i = 0; i < WARMUP_PAIRS; i++) for (const s of setups) await pairMs(s.client, `warm-${n++}`);
    const endAt = performance.now() + seconds * 1000;
    let blocks = 0;
    while (performance.now() < endAt) {
      // Rotate the order each round: none is always first after a pause.
      for (let k = 0; k < setups.length; k++) {
        const s = setups[(k + blocks) % setups.length]!;
        for (let i = 0; i < BLOCK; i++) s.samples.push(await pairMs(s.client, `pair-${n++}`));
      }
      blocks++;
    }
    const st = Object.fromEntries(setups.map((s) => [s.name, stats(s.samples)]));
    console.log(
      `Begin+End pair, client-observed, ms (${blocks} rounds of ${BLOCK} pairs per agent, ${seconds} s; one connection each, loopback)`,
    );
    console.log(
      table(
        ["agent", "n", "p50 ms", "p99 ms", "mean ms"],
        setups.map((s) => [s.name, String(st[s.name]!.n), f(st[s.name]!.p50), f(st[s.name]!.p99), f(st[s.name]!.mean)]),
      ),
    );
    const auth = st["TLS + token"]!.p50 / st.TLS!.p50;
    const tlsCost = st.TLS!.p50 / st.plaintext!.p50;
    console.log(
      `\nratios at p50: (TLS + token) / TLS ${f(auth, 3)} (target ≤ ${TARGET_AUTH_RATIO}: ${verdict(auth <= TARGET_AUTH_RATIO)}); TLS / plaintext ${f(tlsCost, 3)}`,
    );
    return 0;
  } finally {
    for (const s of setups) {
      (s.client as Client).close();
      await s.agent.running.shutdown(1000);
    }
    pki.cleanup();
    data.cleanup();
  }
}

await runBenchmark("bench/security.ts", main);
