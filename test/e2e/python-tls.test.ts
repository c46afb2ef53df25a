/**
 * The Python example over mutual TLS with a token: both services need a client certificate from the test
 * CA and a scoped token; measure.py reads CARBONMON_CLIENT_TLS_* and CARBONMON_TOKEN_FILE like the CLI.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { makePki } from "../helpers/certs.js";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent, startTestIntensity } from "../helpers/grpc.js";
import { writeTokens } from "../helpers/security.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const EXAMPLE = join(ROOT, "examples", "python");

test("measure.py speaks mutual TLS and sends its token; without them it is refused", async (t) => {
  t.timeout(90_000);
  const gen = mkdtempSync(join(tmpdir(), "carbonmon-pygen-"));
  const pki = makePki();
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 300, ms: 1000 }] }] });
  t.teardown(() => {
    rmSync(gen, { recursive: true, force: true });
    pki.cleanup();
    nvml.cleanup();
  });
  await run("bash", [join(EXAMPLE, "generate.sh"), gen], { cwd: ROOT });
  const ca = pki.ca("ca");
  const server = pki.issue(ca, "server", "server");
  const client = pki.issue(ca, "python", "client");
  const { file: tokens, token } = writeTokens(pki.dir, { python: ["windows:read", "windows:write", "intensity:read"] });
  const tokenFile = join(pki.dir, "token");
  writeFileSync(tokenFile, token.python!);
  const tls = {
    CARBONMON_TLS_CERT_FILE: server.cert,
    CARBONMON_TLS_KEY_FILE: server.key,
    CARBONMON_TLS_CLIENT_CA_FILE: ca.cert,
    CARBONMON_AUTH_TOKENS_FILE: tokens,
  };
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300", ...tls });
  t.teardown(() => intensity.close());
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath, ...tls });
  t.teardown(() => agent.close());

  const measure = (env: Record<string, string>) =>
    run("/usr/bin/python3", [join(EXAMPLE, "measure.py"), agent.running.address, intensity.running.address], {
      cwd: EXAMPLE,
      env: { ...process.env, CARBONMON_PYTHON_GEN: gen, PYTHONDONTWRITEBYTECODE: "1", ...env },
      timeout: 30_000,
    }).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code: number; stderr: string }) => ({ code: e.code, out: e.stderr }),
    );
  const ok = await measure({
    CARBONMON_CLIENT_TLS_CA_FILE: ca.cert,
    CARBONMON_CLIENT_TLS_CERT_FILE: client.cert,
    CARBONMON_CLIENT_TLS_KEY_FILE: client.key,
    CARBONMON_TOKEN_FILE: tokenFile,
  });
  t.is(ok.code, 0, ok.out);
  t.regex(ok.out, /window python-example: time/);
  t.regex(ok.out, /intensity DE: 300 g\/kWh/);
  const noToken = await measure({
    CARBONMON_CLIENT_TLS_CA_FILE: ca.cert,
    CARBONMON_CLIENT_TLS_CERT_FILE: client.cert,
    CARBONMON_CLIENT_TLS_KEY_FILE: client.key,
  });
  t.is(noToken.code, 1);
  t.regex(noToken.out, /UNAUTHENTICATED/);
  const noCert = await measure({ CARBONMON_CLIENT_TLS_CA_FILE: ca.cert, CARBONMON_TOKEN_FILE: tokenFile });
  t.is(noCert.code, 1);
  t.regex(noCert.out, /UNAVAILABLE/);
});
