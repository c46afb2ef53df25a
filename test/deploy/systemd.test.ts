/**
 * deploy/systemd: both units hardened the same way, the agent reading RAPL through a group and a udev rule
 * (not root), settings that are real settings and pass validation. `systemd-analyze verify` runs in the
 * e2e tier (test/e2e/systemd-verify.test.ts).
 */
import { readFileSync } from "node:fs";
import test from "ava";
import { SERVICE_NODE_FLAGS } from "../../bench/lib.js";
import { loadAgentConfig, loadIntensityConfig, SETTINGS, type Service } from "../../server/shared/config.js";
import { parseUnit, read } from "./systemd-units.js";

const units = { agent: parseUnit(read("carbonmon-agent.service")), intensity: parseUnit(read("carbonmon-intensity.service")) };
type ServiceName = keyof typeof units;
const service = (s: ServiceName) => units[s].Service!;
const value = (s: ServiceName, key: string) =>
  service(s)
    .filter(([k]) => k === key)
    .map(([, v]) => v);
const one = (s: ServiceName, key: string) => {
  const all = value(s, key);
  if (all.length !== 1) throw new Error(`${s}: ${key} set ${all.length} times`);
  return all[0]!;
};
const environment = (s: ServiceName): Record<string, string> =>
  Object.fromEntries(value(s, "Environment").map((e) => e.split("=", 2) as [string, string]));

for (const s of ["agent", "intensity"] as const) {
  test(`${s}: hardened (read-only system, no new privileges, no capability) with only its data directory writable`, (t) => {
    for (const [key, want] of [
      ["ProtectSystem", "strict"],
      ["NoNewPrivileges", "yes"],
      ["CapabilityBoundingSet", ""],
      ["AmbientCapabilities", ""],
      ["ProtectHome", "yes"],
      ["PrivateTmp", "yes"],
      ["RestrictSUIDSGID", "yes"],
      ["ProtectKernelModules", "yes"],
      ["SystemCallFilter", "@system-service"],
    ]) {
      t.is(one(s, key!), want!, `${s}: ${key}`);
    }
    const dataDir = environment(s).CARBONMON_DATA_DIR!;
    t.is(one(s, "ReadWritePaths"), dataDir);
    t.is(`/var/lib/${one(s, "StateDirectory")}`, dataDir, "systemd creates the data directory for the service user");
    t.is(one(s, "User"), "carbonmon");
    t.false(
      read(`carbonmon-${s}.service`)
        .split("\n")
        .some((l) => /^MemoryDenyWriteExecute=yes/.test(l)),
      "V8 needs W+X memory",
    );
  });

  test(`${s}: starts the installed carbonmon (whose shebang has the services' V8 flags); its settings are real and valid`, (t) => {
    t.is(one(s, "ExecStart"), `/usr/local/bin/carbonmon ${s}`);
    t.is(
      readFileSync(new URL("../../bin/carbonmon.ts", import.meta.url), "utf8").split("\n")[0],
      `#!/usr/bin/env -S node ${SERVICE_NODE_FLAGS.join(" ")}`,
      "the installed bin is compiled from bin/carbonmon.ts",
    );
    const env = environment(s);
    for (const name of Object.keys(env)) {
      const setting = SETTINGS.find((x) => x.env === name);
      t.truthy(setting, `${name} is a setting`);
      t.true((setting!.services as readonly Service[]).includes(s), `${name} is a setting of '${s}'`);
    }
    t.notThrows(() => (s === "agent" ? loadAgentConfig({ env }) : loadIntensityConfig({ env })));
    t.is(one(s, "EnvironmentFile"), `-/etc/carbonmon/${s}.env`);
  });
}

test("agent: RAPL through the carbonmon-rapl group (sysusers + udev rule), not root; NVIDIA devices only", (t) => {
  t.is(one("agent", "SupplementaryGroups"), "carbonmon-rapl");
  const sysusers = read("carbonmon.sysusers");
  t.regex(sysusers, /^g carbonmon-rapl -$/m);
  t.regex(sysusers, /^m carbonmon carbonmon-rapl$/m);
  t.regex(sysusers, /^u carbonmon /m);
  const rule = read("99-carbonmon-rapl.rules")
    .split("\n")
    .filter((l) => l.trim() && !l.startsWith("#"));
  t.is(rule.length, 1);
  t.regex(rule[0]!, /SUBSYSTEM=="powercap"/);
  t.regex(rule[0]!, /RUN\+="\/bin\/chgrp carbonmon-rapl \/sys%p\/energy_uj"/);
  t.regex(rule[0]!, /RUN\+="\/bin\/chmod g\+r \/sys%p\/energy_uj"/);
  t.false(rule[0]!.includes("o+r"), "not readable by everyone (CVE-2020-8694)");
  t.is(one("agent", "DevicePolicy"), "closed");
  t.is(one("agent", "DeviceAllow"), "char-nvidia-frontend rw");
  t.is(one("intensity", "PrivateDevices"), "yes");
});

test("intensity: credentials are documented as systemd credentials read through *_FILE, never as Environment values", (t) => {
  const text = read("carbonmon-intensity.service");
  for (const s of SETTINGS.filter((x) => "secret" in x)) {
    t.regex(text, new RegExp(`^#Environment=${s.env}_FILE=%d/`, "m"), `${s.env}_FILE`);
    t.false(Object.keys(environment("intensity")).includes(s.env));
  }
});
