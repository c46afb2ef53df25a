/**
 * `carbonmon watch` on a real terminal: tmux runs it, capture-pane reads the screen. Needs tmux (e2e tier;
 * .ci/run installs it).
 */
import { execFileSync, spawnSync } from "node:child_process";
import test from "ava";
import { CLI_ARGS } from "../helpers/cli.js";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent } from "../helpers/grpc.js";

async function agentWithGpu(t: { teardown(fn: () => void | Promise<void>): void }) {
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 90, ms: 1000 }] }] });
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath });
  t.teardown(async () => (await agent.close(), nvml.cleanup()));
  return agent.running.address;
}

test("watch on a terminal (tmux): a bar per device, updated in place, Ctrl-C ends it", async (t) => {
  const address = await agentWithGpu(t);
  const session = `carbonmon-watch-${process.pid}`;
  const tmux = (...args: string[]) => execFileSync("tmux", args, { encoding: "utf8" });
  const env = `CARBONMON_LOG_LEVEL=silent`;
  tmux(
    "new-session",
    "-d",
    "-s",
    session,
    "-x",
    "100",
    "-y",
    "20",
    `${env} ${process.execPath} ${CLI_ARGS.join(" ")} watch --agent ${address} --period-ms 200; sleep 30`,
  );
  t.teardown(() => void spawnSync("tmux", ["kill-session", "-t", session]));
  const capture = () => tmux("capture-pane", "-p", "-t", session);
  const command = () => tmux("display-message", "-p", "-t", session, "#{pane_current_command}").trim();
  // Polls (a liveness wait, not a timing assertion) until the screen or the pane's command says so.
  const poll = async <T>(read: () => T, ok: (v: T) => boolean): Promise<T> => {
    let v = read();
    for (let i = 0; i < 100 && !ok(v); i++) {
      await new Promise((r) => setTimeout(r, 100));
      v = read();
    }
    return v;
  };
  const bar = /gpu:0\s+\d+(\.\d)? W\s+█+/;
  const first = await poll(capture, (s) => bar.test(s));
  t.regex(first, bar, first);
  await new Promise((r) => setTimeout(r, 600)); // a few samples later
  const second = capture();
  const rows = (s: string) => s.split("\n").filter((l) => l.includes("gpu:0")).length;
  t.is(rows(second), rows(first), "the same rows are rewritten, not appended");
  tmux("send-keys", "-t", session, "C-c", "");
  // carbonmon exited: the pane's shell moved on to the `sleep` that follows it.
  t.is(await poll(command, (c) => c === "sleep"), "sleep");
  t.notRegex(capture(), /Error|error/);
});
