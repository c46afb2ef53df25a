/**
 * carbonmon window begin|end|get|cancel against a real agent (fake NVML, two GPUs at 150 W): a window's edges
 * as separate processes, as a Slurm prolog and epilog or a CI job's first and last step run them; cancel
 * and the usage errors in this process (cli-in-process.ts).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { createAgentClient } from "../../client/index.js";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent } from "../helpers/grpc.js";
import { carbonmonHere } from "./cli-in-process.js";
import { carbonmon } from "./cli-process.js";

async function agentWithGpus(t: { teardown(fn: () => void | Promise<void>): void }) {
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 150, ms: 1000 }] }, { profile: [{ powerW: 150, ms: 1000 }] }] });
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath });
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-window-"));
  t.teardown(async () => (await agent.close(), nvml.cleanup(), rmSync(dir, { recursive: true, force: true })));
  return { address: agent.running.address, dir };
}

test("window begin … get … end in separate processes: labels, GPUs, text and canonical JSON, -o and --csv", async (t) => {
  const { address, dir } = await agentWithGpus(t);
  const begin = await carbonmon([
    "window",
    "begin",
    "slurm-42",
    "--agent",
    address,
    "--gpus",
    "1",
    "--label",
    "job=42",
    "--label",
    "user=ada",
    "--json",
  ]);
  t.is(begin.code, 0, begin.stderr);
  const b = JSON.parse(begin.stdout);
  t.is(b.key, "slurm-42");
  t.deepEqual(b.gpuIndices, [1]);

  const get = await carbonmon(["window", "get", "slurm-42", "--agent", address, "--json"]);
  t.is(get.code, 0, get.stderr);
  t.false("ended" in JSON.parse(get.stdout), "open: ended is false, left out");

  const out = join(dir, "m.json");
  const csv = join(dir, "emissions.csv");
  const end = await carbonmon(["window", "end", "slurm-42", "--agent", address, "--json", "-o", out, "--csv", csv]);
  t.is(end.code, 0, end.stderr);
  t.is(end.stdout, "", "-o: nothing on stdout");
  const text = readFileSync(out, "utf8");
  t.is(text.split("\n").length, 2, "one line");
  const m = JSON.parse(text);
  t.true(m.ended);
  t.deepEqual(Object.keys(m.gpuEnergyJ), ["1"], "only the GPU asked for");
  t.true(m.gpuEnergyJ["1"] > 0);
  t.deepEqual(m.labels, { job: "42", user: "ada" });
  const [header, row] = readFileSync(csv, "utf8").trimEnd().split("\n");
  t.true(header!.startsWith("timestamp,key,hostname,"));
  t.regex(row!, /,slurm-42,/);
  t.regex(row!, /,job=42 user=ada,/);

  // Repeating end returns the stored result; the text form names the window and its devices.
  const again = await carbonmon(["window", "end", "slurm-42", "--agent", address]);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /^window slurm-42: [\d.]+ s\n/);
  t.regex(again.stdout, new RegExp(`^gpu:1\\s+${m.gpuEnergyJ["1"].toFixed(2)}\\s`, "m"));
});

test("window cancel discards an open window; end of an unknown key fails with NOT_FOUND and exit 1", async (t) => {
  const { address } = await agentWithGpus(t);
  t.is((await carbonmonHere(["window", "begin", "ci/7", "--agent", address])).code, 0);
  const cancel = await carbonmonHere(["window", "cancel", "ci/7", "--agent", address]);
  t.is(cancel.code, 0, cancel.stderr);
  t.regex(cancel.stdout, /^window ci\/7 cancelled \(begun at \S+Z\)\n$/);
  const client = createAgentClient(address);
  t.teardown(() => client.close());
  t.deepEqual(await client.listWindows(), []);
  const end = await carbonmonHere(["window", "end", "ci/7", "--agent", address]);
  t.is(end.code, 1);
  t.regex(end.stderr, /^carbonmon: agent at 127\.0\.0\.1:\d+: .*NOT_FOUND.*\n$/);
});

test("window: usage errors exit 2", async (t) => {
  for (const args of [
    ["window"],
    ["window", "stop", "k"],
    ["window", "begin"],
    ["window", "end", "k", "--gpus", "0"],
    ["window", "begin", "k", "--label", "novalue"],
  ]) {
    const r = await carbonmonHere(args);
    t.is(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    t.regex(r.stderr, /^carbonmon window/);
  }
  const help = await carbonmonHere(["window", "begin", "--help"]);
  t.is(help.code, 0);
  for (const o of ["--gpus", "--label", "--csv", "--json", "--output", "--agent"]) t.true(help.stdout.includes(o), o);
});
