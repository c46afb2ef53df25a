import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent, startTestIntensity, tempDataDir } from "../helpers/grpc.js";
import { createAgentClient } from "../../client/index.js";
import { carbonmonHere } from "./cli-in-process.js";
import { carbonmon } from "./cli-process.js";

const POWER_W = 120;

/** RFC 4180 as a spreadsheet reads it: quoted fields may hold commas, quotes ("") and newlines. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") row.push(field), (field = "");
    else if (c === "\n") row.push(field), rows.push(row), (row = []), (field = "");
    else field += c;
  }
  return rows;
}

function setup(t: { teardown(fn: () => void): void }) {
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: POWER_W, ms: 1000 }] }] });
  const data = tempDataDir();
  t.teardown(() => (nvml.cleanup(), data.cleanup()));
  return { CARBONMON_NVML_LIBRARY: nvml.libraryPath, CARBONMON_DATA_DIR: data.dir };
}

test("run measures the command on an in-process agent, prints a table on stderr and exits with its code", async (t) => {
  const r = await carbonmon(["run", "--", process.execPath, "-e", "setTimeout(()=>process.exit(3),600)"], setup(t));
  t.is(r.code, 3, r.stderr);
  t.is(r.stdout, "");
  const time = Number(/window \S+: ([\d.]+) s/.exec(r.stderr)?.[1]);
  const energy = Number(/^gpu:0\s+([\d.]+)\s+([\d.]+)/m.exec(r.stderr)?.[1]);
  t.true(time >= 0.6 && time < 5, r.stderr);
  t.true(Math.abs(energy - POWER_W * time) <= 0.25 * POWER_W * time, `${energy} J in ${time} s`);
  t.regex(r.stderr, /^total\s+[\d.]+\s+[\d.]+/m);
  t.regex(r.stderr, /carbon: disabled \(.+\)/);
});

test("run --json: CMD's stdout and stderr untouched, then the Measurement as one line of canonical protobuf JSON on stderr", async (t) => {
  const script = "process.stdout.write('out\\n'); process.stderr.write('err\\n'); setTimeout(()=>{},300)";
  const r = await carbonmon(
    ["run", "--json", "--gpus", "0", "--key", "job/step-1", "--label", "team=ml", "--", process.execPath, "-e", script],
    setup(t),
  );
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, "out\n");
  const [own, json, rest] = r.stderr.split("\n");
  t.is(own, "err");
  t.is(rest, "", "exactly one line of JSON");
  t.false(json!.includes("null"));
  const m = JSON.parse(json!);
  t.is(m.key, "job/step-1");
  t.true(m.timeS >= 0.3);
  t.true(m.gpuEnergyJ["0"] > 0);
  t.deepEqual(m.labels, { team: "ml", command: "node" });
  t.is(m.carbonStatus, "CARBON_STATUS_DISABLED", "enums by name");
  t.regex(m.beginTime, /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
  t.false("cpuEnergyJ" in m, "empty maps left out");
});

test("run -o FILE writes the result there (stderr stays CMD's), --csv appends a row per run under one header", async (t) => {
  const env = setup(t);
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-run-out-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [out, csv] = [join(dir, "m.json"), join(dir, "emissions.csv")];
  const r = await carbonmon(
    [
      "run",
      "--json",
      "-o",
      out,
      "--csv",
      csv,
      "--key",
      "csv/1",
      "--",
      process.execPath,
      "-e",
      "process.stderr.write('e');setTimeout(()=>process.exit(5),300)",
    ],
    env,
  );
  t.is(r.code, 5);
  t.is(r.stderr, "e");
  t.is(JSON.parse(readFileSync(out, "utf8")).key, "csv/1");
  const text = await carbonmon(["run", "-o", out, "--csv", csv, "--key", "csv/2", "--", "true"], env);
  t.is(text.stderr, "");
  t.regex(readFileSync(out, "utf8"), /^window csv\/2: [\d.]+ s\n/);
  const rows = parseCsv(readFileSync(csv, "utf8"));
  t.is(rows.length, 3, "a header and two rows");
  const header = rows[0]!;
  t.deepEqual(header.slice(0, 6), ["timestamp", "key", "hostname", "begin_time", "end_time", "duration_s"]);
  const col = (row: string[], name: string): string => row[header.indexOf(name)]!;
  t.is(col(rows[1]!, "key"), "csv/1");
  t.is(col(rows[1]!, "exit_code"), "5");
  t.is(
    col(rows[1]!, "command"),
    `${process.execPath} -e process.stderr.write('e');setTimeout(()=>process.exit(5),300)`,
    "quoted as RFC 4180 says",
  );
  t.is(col(rows[2]!, "exit_code"), "0");
  t.true(Number(col(rows[1]!, "gpu_energy_j")) > 0);
  t.is(Number(col(rows[1]!, "energy_j")), Number(col(rows[1]!, "gpu_energy_j")));
  t.is(col(rows[1]!, "carbon_g"), "", "no grams without an intensity service");
  t.is(col(rows[1]!, "carbon_status"), "DISABLED");
});

test("run with an intensity service: grams per device in the table and in --json", async (t) => {
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=400" });
  t.teardown(() => intensity.close());
  const env = { ...setup(t), CARBONMON_INTENSITY_ADDR: intensity.running.address, CARBONMON_LOCATION: "DE" };
  const text = await carbonmon(["run", "--", process.execPath, "-e", "setTimeout(()=>{},300)"], env);
  t.is(text.code, 0, text.stderr);
  const row = /^gpu:0\s+([\d.]+)\s+[\d.]+\s+([\d.]+)$/m.exec(text.stderr);
  t.truthy(row, text.stderr);
  t.true(Math.abs(Number(row![2]) - (Number(row![1]) / 3.6e6) * 400) < 1e-4, text.stderr);
  t.regex(text.stderr, /^carbon: final$/m);
  const json = await carbonmon(["run", "--json", "--", process.execPath, "-e", "setTimeout(()=>{},300)"], env);
  const m = JSON.parse(json.stderr);
  t.true(m.gpuEnergyJ["0"] > 0);
  t.true(Math.abs(m.gpuCarbonG["0"] - (m.gpuEnergyJ["0"] / 3.6e6) * 400) <= 1e-9 * m.gpuCarbonG["0"]);
  t.is(m.carbonStatus, "CARBON_STATUS_FINAL");
  t.is(m.carbonPeriods[0].intensity.provider, "static");
});

test("run of a command that cannot start exits 127 and still ends the window", async (t) => {
  const agent = await startTestAgent(setup(t));
  t.teardown(() => agent.close());
  const r = await carbonmon(["run", "--agent", agent.running.address, "--key", "missing/1", "--", "/nonexistent/cmd"]);
  t.is(r.code, 127);
  t.regex(r.stderr, /cannot run \/nonexistent\/cmd: command not found/);
  const client = createAgentClient(agent.running.address);
  t.teardown(() => client.close());
  t.deepEqual(await client.listWindows(), []);
  t.true((await client.getWindow("missing/1")).measurement.ended);
});

test("run: no command, an unknown option", async (t) => {
  t.is((await carbonmonHere(["run"])).code, 2);
  const bad = await carbonmonHere(["run", "--frobnicate", "--", "true"]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /Unknown option '--frobnicate'/);
});

test("run with the agent unreachable: CMD still runs, one warning, CMD's exit code; --require-agent refuses", async (t) => {
  const script = "process.stdout.write('ran'); process.exit(4)";
  const down = await carbonmon(["run", "--agent", "127.0.0.1:1", "--csv", "/nonexistent/never.csv", "--", process.execPath, "-e", script]);
  t.is(down.code, 4);
  t.is(down.stdout, "ran");
  t.regex(
    down.stderr,
    /^carbonmon: warning: cannot reach the agent at 127\.0\.0\.1:1 \(UNAVAILABLE: .*\); \S+ runs unmeasured \(--require-agent to refuse\)\n$/,
  );
  const strict = await carbonmon(["run", "--require-agent", "--agent", "127.0.0.1:1", "--", process.execPath, "-e", script]);
  t.is(strict.code, 1);
  t.is(strict.stdout, "", "the command did not run");
  t.regex(strict.stderr, /^carbonmon: cannot reach the agent at 127\.0\.0\.1:1 \(UNAVAILABLE: .*\)\n$/);
});

test("run where the agent refuses the window (its key is open): CMD runs unmeasured with one warning", async (t) => {
  const agent = await startTestAgent(setup(t));
  t.teardown(() => agent.close());
  const client = createAgentClient(agent.running.address);
  t.teardown(() => client.close());
  await client.beginWindow("taken");
  const r = await carbonmon(["run", "--agent", agent.running.address, "--key", "taken", "--", process.execPath, "-e", "process.exit(2)"]);
  t.is(r.code, 2);
  t.regex(r.stderr, /^carbonmon: warning: agent at 127\.0\.0\.1:\d+: .*ALREADY_EXISTS.*; \S+ runs unmeasured/);
  t.is(r.stderr.split("\n").length, 2, "one line");
  t.deepEqual(
    (await client.listWindows()).map((w) => w.key),
    ["taken"],
    "the other window is untouched",
  );
});

test("run without --agent where an agent already uses the data directory: refused with the way out, and the agent's windows are untouched", async (t) => {
  const env = setup(t);
  const agent = await startTestAgent(env);
  t.teardown(() => agent.close());
  const client = createAgentClient(agent.running.address);
  t.teardown(() => client.close());
  await client.beginWindow("theirs");
  const refused = await carbonmon(["run", "--", "true"], env);
  t.is(refused.code, 1);
  t.regex(
    refused.stderr,
    /^carbonmon: another carbonmon agent is using the data directory .* \(hint: .*use --agent to measure through the running one\)\n$/,
  );
  t.deepEqual(
    (await client.listWindows()).map((w) => w.key),
    ["theirs"],
  );
});

test("run --help lists its options (and --help after -- belongs to the command)", async (t) => {
  const r = await carbonmonHere(["run", "--help"]);
  t.is(r.code, 0);
  for (const o of ["--agent", "--gpus", "--key", "--label", "--json", "--output", "--csv", "--require-agent"])
    t.true(r.stdout.includes(o), o);
  // Not run's help: the command's argument. run goes on to the agent (here unreachable, and required).
  const after = await carbonmonHere(["run", "--require-agent", "--agent", "127.0.0.1:1", "--", "/nonexistent/cmd", "--help"]);
  t.is(after.code, 1, after.stderr);
  t.is(after.stdout, "");
  t.regex(after.stderr, /^carbonmon: cannot reach the agent at 127\.0\.0\.1:1/);
});
