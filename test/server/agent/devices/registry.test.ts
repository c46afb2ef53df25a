import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { probeSources } from "../../../../server/agent/devices/registry.js";
import { loadAgentConfig } from "../../../../server/shared/config.js";

/** A host with no GPU library and an empty powercap tree. */
function bareHost(t: { teardown(fn: () => void): void }, simulated: string) {
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-bare-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return loadAgentConfig({
    env: {
      CARBONMON_NVML_LIBRARY: join(dir, "libnvidia-ml.so.1"),
      CARBONMON_POWERCAP_ROOT: dir,
      CARBONMON_DATA_DIR: dir,
      CARBONMON_SIMULATED_GPU: simulated,
    },
  });
}

test("the simulated GPU is a setting: off by default, one labelled GPU when CARBONMON_SIMULATED_GPU=true and none is found", async (t) => {
  const gpus = async (simulated: string) => {
    const sources = await probeSources(bareHost(t, simulated));
    t.teardown(() => Promise.all(sources.map((s) => s.stop())).then(() => undefined));
    return sources.flatMap((s) => s.devices()).filter((d) => d.domain === "gpu");
  };
  t.deepEqual(await gpus("false"), []);
  const simulated = await gpus("true");
  t.is(simulated.length, 1);
  t.true(simulated[0]!.simulated);
});

test("CARBONMON_SIMULATED_GPU accepts only true or false", (t) => {
  const err = t.throws(() => bareHost(t, "yes"));
  t.regex(err!.message, /CARBONMON_SIMULATED_GPU/);
});
