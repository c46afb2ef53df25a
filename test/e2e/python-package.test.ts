/**
 * The Python package (clients/python): `pip install ./clients/python` into a fresh virtual environment with
 * Debian's python3 (no index: the build needs no download), then its pytest suite against a real agent
 * (fake NVML: two GPUs at 300 and 150 W) and a real intensity service (an imitation ElectricityMaps with the
 * recorded US-MIDW-MISO history re-dated to end now, coordinates 42.2776,-83.7409 → US-MIDW-MISO; static
 * DE=300 behind it, which prices the agent's windows), plus an imitation ipinfo.
 * The time-travel test replays Zeus's carbon vectors (its tests' windows over the recorded history,
 * test/fixtures/electricitymaps/history-us-midw-miso.json, the same file as /work/shared/fixtures'): the
 * agent's clock and the fake NVML's live through 2024-11-30/12-01 in seconds, moved by pytest through a
 * control URL; GPUs at 30, 35 and 40 W in every quarter hour except 20 s around each quarter (edges and hour
 * boundaries fall there), and the grams must be Zeus's: Σ over hours of that hour's energy / 3.6e6 × the
 * hour's recorded intensity (to 1e-9 on the agent's own split by hour; within the agent's reported error
 * bound against the profile's energy).
 * Needs python3, python3-venv, python3-pip, python3-grpcio, python3-protobuf, python3-pytest,
 * protobuf-compiler, protobuf-compiler-grpc and libprotobuf-dev (.ci/run installs them).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { makePki } from "../helpers/certs.js";
import { FAKE_EM_TOKEN, recordedHistory, startFakeElectricityMaps } from "../helpers/fake-electricitymaps.js";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent, startTestIntensity, type TestAgent } from "../helpers/grpc.js";
import { writeTokens } from "../helpers/security.js";
import { steppedProfile, TimeTravel } from "../helpers/time-travel.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const PACKAGE = join(ROOT, "clients/python");
const HOUR = 3_600_000;
const MICHIGAN = { lat: 42.2776, lon: -83.7409, zone: "US-MIDW-MISO" };

const work = mkdtempSync(join(tmpdir(), "carbonmon-pypkg-"));
const venv = join(work, "venv");
const python = join(venv, "bin/python");

let installed = "";
test.before(async () => {
  // --system-site-packages: Debian's grpcio, protobuf and pytest satisfy the package's dependencies offline.
  await run("/usr/bin/python3", ["-m", "venv", "--system-site-packages", venv]);
  installed = (await run(join(venv, "bin/pip"), ["install", "--no-index", "--no-cache-dir", PACKAGE], { cwd: work, timeout: 110_000 }))
    .stdout;
});
test.after.always(() => rmSync(work, { recursive: true, force: true }));

/** Runs pytest on the package's tests (selected by -m) with `env`; resolves with its output and counts. */
export async function pytest(marker: string, env: Record<string, string>): Promise<{ out: string; passed: number; failed: number }> {
  const args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker, join(PACKAGE, "tests")];
  const result = await run(python, args, {
    cwd: work,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", ...env },
    timeout: 170_000,
  }).then(
    (r) => r.stdout + r.stderr,
    (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ""}${err.stderr ?? ""}`,
  );
  const count = (word: string): number => Number(new RegExp(`(\\d+) ${word}`).exec(result)?.[1] ?? 0);
  return { out: result, passed: count("passed"), failed: count("failed") + count("error") };
}

test.serial("pip install ./clients/python works offline and builds the stubs from proto/", async (t) => {
  t.regex(installed, /Successfully installed carbonmon-0\.1\.0/);
  const probe = await run(
    python,
    [
      "-c",
      "import carbonmon, carbonmon.zeus; from carbonmon.agent.v1 import agent_pb2_grpc; from carbonmon.intensity.v1 import intensity_pb2; print(carbonmon.__version__, carbonmon.__file__)",
    ],
    { cwd: work },
  );
  t.regex(
    probe.stdout,
    new RegExp(`^0\\.1\\.0 ${venv.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/lib/python3[.\\d]*/site-packages/carbonmon/__init__\\.py\\n$`),
    "the installed copy, not the sources",
  );
});

test.serial("pytest: the core API, the Zeus drop-in and sync_execution against a real agent and intensity service", async (t) => {
  t.timeout(180_000);
  const lastHour = Math.floor(Date.now() / HOUR) * HOUR;
  const history = recordedHistory(lastHour);
  const historyFile = join(work, "history.json");
  writeFileSync(historyFile, JSON.stringify({ zone: MICHIGAN.zone, history }));
  const em = await startFakeElectricityMaps({ series: { [MICHIGAN.zone]: history }, locations: [MICHIGAN], nowMs: () => Date.now() });
  const ipinfo = createServer((_req, res) =>
    res.end(JSON.stringify({ ip: "35.3.237.23", loc: `${MICHIGAN.lat},${MICHIGAN.lon}`, country: "US" })),
  );
  await new Promise<void>((resolve) => ipinfo.listen(0, "127.0.0.1", resolve));
  const intensity = await startTestIntensity({
    CARBONMON_PROVIDERS: "electricitymaps,static",
    ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
    CARBONMON_INTENSITY_CONSTANTS: "DE=300",
  });
  const nvml = fakeNvml({ gpus: [300, 150].map((powerW) => ({ profile: [{ powerW, ms: 1000 }] })) });
  const agent = await startTestAgent({
    CARBONMON_NVML_LIBRARY: nvml.libraryPath,
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_LOCATION: "DE",
  });
  t.teardown(async () => {
    await agent.close();
    await intensity.close();
    await em.close();
    ipinfo.close();
    nvml.cleanup();
  });
  const r = await pytest("not timetravel", {
    CARBONMON_AGENT_ADDR: agent.running.address,
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_IPINFO_URL: `http://127.0.0.1:${(ipinfo.address() as AddressInfo).port}/json`,
    CARBONMON_TEST_POWER_W: "300,150",
    CARBONMON_TEST_G_PER_KWH: "300",
    CARBONMON_TEST_EM_HISTORY: historyFile,
  });
  t.log(r.out.trim().split("\n").slice(-15).join("\n"));
  t.is(r.failed, 0, r.out);
  t.true(r.passed >= 20, `${r.passed} passed`);
});

const QUARTER = 15 * 60_000;
const QUIET_MS = 20_000;
const LEVELS_W = [30, 35, 40];
const FIXTURE = fileURLToPath(new URL("../fixtures/electricitymaps/history-us-midw-miso.json", import.meta.url));

/** Until every device has a reading after the clock's now. */
async function settle(tt: TimeTravel, agent: TestAgent): Promise<void> {
  await agent.context.sampler.waitForReadingsAfter(
    tt.now(),
    agent.context.sampler.devices().map((d) => d.id),
    5000,
  );
}

/** Moves the clock to toMs, stopping 1 s before and after every hour boundary on the way (the agent logs its marks there). */
async function advance(tt: TimeTravel, agent: TestAgent, toMs: number): Promise<void> {
  for (let b = Math.floor(tt.now() / HOUR) * HOUR + HOUR; b <= toMs; b += HOUR) {
    tt.jumpTo(b - 1000);
    await settle(tt, agent);
    tt.jumpTo(b + 1000);
    await settle(tt, agent);
  }
  if (toMs > tt.now()) tt.jumpTo(toMs);
  await settle(tt, agent);
}

test.serial("pytest (time travel): Zeus's carbon vectors over the recorded history give Zeus's grams", async (t) => {
  t.timeout(180_000);
  const startMs = Date.UTC(2024, 10, 30, 6);
  const em = await startFakeElectricityMaps({ series: { [MICHIGAN.zone]: recordedHistory() }, locations: [MICHIGAN] });
  const intensity = await startTestIntensity({
    CARBONMON_PROVIDERS: "electricitymaps",
    ELECTRICITYMAPS_API_TOKEN: FAKE_EM_TOKEN,
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
  });
  const tt = new TimeTravel(startMs - 30_000);
  const profiles = LEVELS_W.map((w) => steppedProfile(QUARTER, QUIET_MS, 4, 0, () => w));
  const nvml = fakeNvml({ gpus: profiles.map((profile) => ({ profile })), epochMs: startMs, fieldTimestamp: "update" });
  tt.attach(nvml.libraryPath);
  const agent = await startTestAgent(
    {
      CARBONMON_NVML_LIBRARY: nvml.libraryPath,
      CARBONMON_INTENSITY_ADDR: intensity.running.address,
      CARBONMON_LOCATION: MICHIGAN.zone,
      CARBONMON_CARBON_RETRY_MS: "100",
    },
    tt.clock,
  );
  const control = createServer((req, res) => {
    const to = Date.parse(new URL(req.url ?? "/", "http://x").searchParams.get("to") ?? "");
    advance(tt, agent, to).then(
      () => res.end(JSON.stringify({ now: new Date(tt.now()).toISOString() })),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve));
  t.teardown(async () => {
    control.close();
    await agent.close();
    await intensity.close();
    await em.close();
    nvml.cleanup();
  });
  // The worker learns that the fake stamps update instants while the GPUs draw power, then the clock moves to the start.
  await settle(tt, agent);
  await new Promise((r) => setTimeout(r, 500));
  tt.jumpTo(startMs);
  await settle(tt, agent);

  const r = await pytest("timetravel", {
    CARBONMON_AGENT_ADDR: agent.running.address,
    CARBONMON_INTENSITY_ADDR: intensity.running.address,
    CARBONMON_TEST_CONTROL: `http://127.0.0.1:${(control.address() as AddressInfo).port}`,
    CARBONMON_TEST_LEVELS_W: LEVELS_W.join(","),
    CARBONMON_TEST_QUIET_S: String(QUIET_MS / 1000),
    CARBONMON_TEST_EM_HISTORY: FIXTURE,
  });
  t.log(r.out.trim().split("\n").slice(-15).join("\n"));
  t.is(r.failed, 0, r.out);
  t.is(r.passed, 1);
});

test.serial(
  "the package speaks mutual TLS and sends its token (CARBONMON_CLIENT_TLS_*_FILE, CARBONMON_TOKEN_FILE); without the token it is refused",
  async (t) => {
    t.timeout(90_000);
    const pki = makePki();
    const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 300, ms: 1000 }] }] });
    const ca = pki.ca("ca");
    const server = pki.issue(ca, "server", "server");
    const client = pki.issue(ca, "python", "client");
    const { file: tokens, token } = writeTokens(pki.dir, { python: ["windows:read", "windows:write"] });
    const tokenFile = join(pki.dir, "token");
    writeFileSync(tokenFile, token.python!);
    const agent = await startTestAgent({
      CARBONMON_NVML_LIBRARY: nvml.libraryPath,
      CARBONMON_TLS_CERT_FILE: server.cert,
      CARBONMON_TLS_KEY_FILE: server.key,
      CARBONMON_TLS_CLIENT_CA_FILE: ca.cert,
      CARBONMON_AUTH_TOKENS_FILE: tokens,
    });
    t.teardown(async () => (await agent.close(), nvml.cleanup(), pki.cleanup()));
    const script = [
      "import carbonmon",
      "agent = carbonmon.Agent()",
      "try:",
      "    print('gpus', len(agent.host().gpus))",
      "    agent.begin_window('tls/1')",
      "    print('ended', agent.end_window('tls/1').time > 0)",
      "except carbonmon.CarbonmonError as err:",
      "    print('refused', err.code)",
    ].join("\n");
    const tls = {
      CARBONMON_AGENT_ADDR: agent.running.address,
      CARBONMON_CLIENT_TLS_CA_FILE: ca.cert,
      CARBONMON_CLIENT_TLS_CERT_FILE: client.cert,
      CARBONMON_CLIENT_TLS_KEY_FILE: client.key,
    };
    const py = (env: Record<string, string>) =>
      run(python, ["-c", script], { cwd: work, env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", ...env }, timeout: 30_000 }).then(
        (r) => r.stdout,
      );
    t.is(await py({ ...tls, CARBONMON_TOKEN_FILE: tokenFile }), "gpus 1\nended True\n");
    t.is(await py(tls), "refused UNAUTHENTICATED\n");
  },
);
