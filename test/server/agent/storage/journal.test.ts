import test from "ava";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openJournal } from "../../../../server/agent/storage/journal.js";
import { tempDataDir } from "../../../helpers/grpc.js";

/** What another process reading the file sees: the text up to the first NUL. */
function fileText(path: string): string {
  const file = readFileSync(path);
  const end = file.indexOf(0);
  return file.subarray(0, end < 0 ? file.length : end).toString("utf8");
}

function journalPath(t: { teardown(fn: () => void): void }): string {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  return join(data.dir, "agent.journal");
}

test("on Linux the journal is mapped, and an append is in the file the moment it returns (no close, no flush)", (t) => {
  const path = journalPath(t);
  const j = openJournal(path);
  t.teardown(() => j.close());
  t.is(j.mode, "mapped", j.fallbackReason);
  j.append(JSON.stringify(["b", 1, "k"]));
  t.is(fileText(path), '["b",1,"k"]\n', "another reader of the file sees the record");
  j.append(JSON.stringify(["c", 1, "é ✓"]));
  t.is(fileText(path), '["b",1,"k"]\n["c",1,"é ✓"]\n');
  t.true(statSync(path).size >= 1 << 20, "the file is sized (and its blocks written) before it is mapped");
});

for (const mode of ["mapped", "write"] as const) {
  test(`${mode}: records read back in order after a reopen; clear empties the journal for the next reader`, (t) => {
    const path = journalPath(t);
    const a = openJournal(path, { mode });
    t.is(a.mode, mode);
    for (let i = 0; i < 3; i++) a.append(JSON.stringify({ i }));
    a.close();
    const b = openJournal(path, { mode });
    t.deepEqual(b.read(), { records: [{ i: 0 }, { i: 1 }, { i: 2 }], badLines: 0 });
    b.clear();
    t.is(fileText(path), "");
    b.append(JSON.stringify({ i: 3 }));
    b.close();
    const c = openJournal(path, { mode });
    t.teardown(() => c.close());
    t.deepEqual(c.read().records, [{ i: 3 }], "nothing from before the clear");
  });

  test(`${mode}: a torn last record is dropped, and the next append does not run into it`, (t) => {
    const path = journalPath(t);
    writeFileSync(path, `${JSON.stringify({ i: 1 })}\n{"i":2,"torn`);
    const a = openJournal(path, { mode });
    t.deepEqual(a.read(), { records: [{ i: 1 }], badLines: 0 });
    a.append(JSON.stringify({ i: 3 }));
    a.close();
    const b = openJournal(path, { mode });
    t.teardown(() => b.close());
    t.deepEqual(b.read(), { records: [{ i: 1 }, { i: 3 }], badLines: 0 });
  });

  test(`${mode}: a journal written the other way is read the same (an agent that falls back, or stops falling back)`, (t) => {
    const path = journalPath(t);
    const other = openJournal(path, { mode: mode === "mapped" ? "write" : "mapped" });
    other.append(JSON.stringify({ i: 1 }));
    other.close();
    const j = openJournal(path, { mode });
    j.append(JSON.stringify({ i: 2 }));
    j.close();
    const again = openJournal(path);
    t.teardown(() => again.close());
    t.deepEqual(again.read(), { records: [{ i: 1 }, { i: 2 }], badLines: 0 });
  });
}

test("a full mapped journal grows: every record is kept, in order", (t) => {
  const path = journalPath(t);
  const j = openJournal(path, { initialBytes: 4096 });
  const records = Array.from({ length: 200 }, (_, i) => ({ i, pad: "x".repeat(i % 7 === 0 ? 5000 : 100) }));
  for (const r of records) j.append(JSON.stringify(r));
  j.close();
  t.true(statSync(path).size > 4096 * 16, `grown to ${statSync(path).size} bytes`);
  const again = openJournal(path, { initialBytes: 4096 });
  t.teardown(() => again.close());
  t.deepEqual(again.read(), { records, badLines: 0 });
});

test("a closed journal refuses appends with an error, not a crash", (t) => {
  const j = openJournal(journalPath(t));
  j.close();
  t.throws(() => j.append("{}"), { message: /closed/ });
  j.close(); // twice is harmless
});
