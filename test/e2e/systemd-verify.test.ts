/** `systemd-analyze verify` on deploy/systemd's units, where the machine has systemd (skipped otherwise). */
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";

const run = promisify(execFile);
const UNITS = ["carbonmon-agent.service", "carbonmon-intensity.service"];
const BIN = "/usr/local/bin/carbonmon";
/** verify checks that ExecStart's program exists: where carbonmon is not installed, an executable stands in for it. */
const installedHere = (text: string): string =>
  existsSync(BIN) ? text : text.replaceAll(`ExecStart=${BIN} `, `ExecStart=${process.execPath} `);
const hasAnalyze = await run("systemd-analyze", ["--version"]).then(
  () => true,
  () => false,
);

(hasAnalyze ? test : test.skip)("systemd-analyze verify finds nothing to say about either unit", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-units-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const unit of UNITS) {
    const text = readFileSync(fileURLToPath(new URL(`../../deploy/systemd/${unit}`, import.meta.url)), "utf8");
    writeFileSync(join(dir, unit), installedHere(text));
  }
  const paths = UNITS.map((u) => join(dir, u));
  const { stdout, stderr } = await run("systemd-analyze", ["verify", ...paths]).catch(
    (err: { stdout: string; stderr: string; message: string }) => {
      t.fail(err.message);
      return err;
    },
  );
  // Warnings (an unknown key, a bad value) do not change the exit code: any line about our files fails.
  const about = `${stdout}\n${stderr}`.split("\n").filter((l) => UNITS.some((u) => l.includes(u)));
  t.deepEqual(about, []);
});

test("the check is sound: a misspelt key in a unit is reported", async (t) => {
  if (!hasAnalyze) return t.pass("no systemd-analyze here");
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-units-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const unit = join(dir, "broken.service");
  copyFileSync(fileURLToPath(new URL("../../deploy/systemd/carbonmon-intensity.service", import.meta.url)), unit);
  writeFileSync(unit, installedHere(readFileSync(unit, "utf8").replace("ProtectSystem=strict", "ProtectSystm=strict")));
  const out = await run("systemd-analyze", ["verify", unit]).catch((e: { stdout: string; stderr: string }) => e);
  t.regex(`${out.stdout}${out.stderr}`, /Unknown key 'ProtectSystm'/);
});
