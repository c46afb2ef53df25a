/**
 * Records read back from disk are validated before they are applied: a syntactically valid but wrong
 * record (issue 20, case 9) is set aside with a log line, and the agent serves every other window, lets the
 * key be used again, and keeps answering ListWindows.
 */
import { truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import Database from "better-sqlite3";
import type {
  CancelWindowRequest,
  CancelWindowResponse,
  ListWindowsRequest,
  ListWindowsResponse,
} from "../../../../proto/gen/carbonmon/agent/v1/agent.js";
import { fakeNvml } from "../../../helpers/fake-nvml.js";
import { call, startTestAgent, tempDataDir, type TestAgent, beginWindow } from "../../../helpers/grpc.js";

const begin = (agent: TestAgent, key: string) =>
  beginWindow(agent.client, {
    key,
    skipCpus: true,
  });
const list = (agent: TestAgent) =>
  call<ListWindowsRequest, ListWindowsResponse>(agent.client, agent.client.listWindows, { includeEnded: true });
const cancel = (agent: TestAgent, key: string) =>
  call<CancelWindowRequest, CancelWindowResponse>(agent.client, agent.client.cancelWindow, { key });

test("a wrong journal record and a window row whose spec does not decode are set aside; everything else is served", async (t) => {
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 100, ms: 1000 }] }] });
  const data = tempDataDir();
  t.teardown(() => (nvml.cleanup(), data.cleanup()));
  const env = { CARBONMON_NVML_LIBRARY: nvml.libraryPath, CARBONMON_DATA_DIR: data.dir, CARBONMON_FIRST_READING_TIMEOUT_MS: "0" };

  const first = await startTestAgent(env);
  await begin(first, "keep");
  await begin(first, "victim");
  await first.close(); // a graceful stop: the journal is moved into agent.db
  const db = new Database(join(data.dir, "agent.db"));
  db.prepare("UPDATE windows SET spec = ? WHERE key = 'victim'").run(JSON.stringify({ v: 1, key: "victim" }));
  db.close();
  // The journal a killed agent might leave, with the record from the report: a begin whose spec is empty.
  writeFileSync(join(data.dir, "agent.journal"), `${JSON.stringify(["b", 99, "ghost", 1, 1, {}])}\n`);

  const second = await startTestAgent(env);
  t.teardown(() => second.close());
  const windows = await list(second);
  t.deepEqual(
    windows.windows.map((w) => w.key),
    ["keep"],
    "ListWindows answers, without the damaged windows",
  );
  // Neither key is held by a window that can never be ended.
  t.is((await begin(second, "victim")).key, "victim");
  t.is((await begin(second, "ghost")).key, "ghost");
  await cancel(second, "victim");
  await cancel(second, "ghost");
  const check = new Database(join(data.dir, "agent.db"), { readonly: true });
  t.teardown(() => check.close());
  const aside = check.prepare("SELECT reason, row FROM set_aside").all() as Array<{ reason: string; row: string }>;
  t.is(aside.length, 1);
  t.regex(aside[0]!.reason, /window spec/);
  t.regex(aside[0]!.row, /"victim"/, "the row is kept for inspection");
});

test("agent.journal truncated from outside while the agent runs: it keeps serving, and nothing answered is lost", async (t) => {
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 100, ms: 1000 }] }] });
  const data = tempDataDir();
  t.teardown(() => (nvml.cleanup(), data.cleanup()));
  const env = { CARBONMON_NVML_LIBRARY: nvml.libraryPath, CARBONMON_DATA_DIR: data.dir, CARBONMON_FIRST_READING_TIMEOUT_MS: "0" };
  const first = await startTestAgent(env); // the default journal mode: write(2)
  await begin(first, "a");
  truncateSync(join(data.dir, "agent.journal"), 0); // a clean-up job, an operator
  await begin(first, "b");
  await cancel(first, "a");
  truncateSync(join(data.dir, "agent.journal"), 0);
  await begin(first, "c");
  await first.close();
  const second = await startTestAgent(env);
  t.teardown(() => second.close());
  t.deepEqual(
    (await list(second)).windows
      .filter((w) => !w.ended)
      .map((w) => w.key)
      .sort(),
    ["b", "c"],
  );
});
