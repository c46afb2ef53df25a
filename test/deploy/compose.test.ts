/**
 * deploy/compose: one file per role, parsed with `yaml` (no Docker engine here). central.yml runs the
 * intensity service on PostgreSQL; gpu-host.yml runs the agent pointed at ${CARBONMON_INTENSITY_ADDR}.
 * Checked: what Debian's docker-compose 1.29 accepts (no top-level `name:`), hostnames, NVIDIA variables
 * for the agent only, every variable a setting of the service that gets it, and the interpolated settings
 * passing the services' own validation.
 */
import { readFileSync } from "node:fs";
import test from "ava";
import { parse } from "yaml";
import { loadAgentConfig, loadIntensityConfig, SETTINGS, type Service } from "../../server/shared/config.js";

type Obj = Record<string, any>;
const read = (name: string) => readFileSync(new URL(`../../deploy/compose/${name}`, import.meta.url), "utf8");
const files = { central: read("central.yml"), gpuHost: read("gpu-host.yml") };
const central = parse(files.central) as Obj;
const gpuHost = parse(files.gpuHost) as Obj;
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$. */
function interpolate(text: string, vars: Record<string, string | undefined>): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g,
    (all, name: string | undefined, op: string | undefined, arg: string | undefined) => {
      if (all === "$$") return "$";
      const value = vars[name!];
      if (op === ":?" && !value) throw new Error(`${name}: ${arg}`);
      if (op === "?" && value === undefined) throw new Error(`${name}: ${arg}`);
      if (op === ":-") return value ? value : (arg ?? "");
      if (op === "-") return value ?? arg ?? "";
      return value ?? "";
    },
  );
}

const env = (compose: Obj, service: string): Record<string, string> => compose.services[service].environment ?? {};
const OURS = /^(CARBONMON|ELECTRICITYMAPS|WATTTIME)_[A-Z0-9_]+$/;

test("one role per file: central has the intensity service and PostgreSQL, the GPU host only the agent; no top-level name", (t) => {
  t.deepEqual(Object.keys(central.services).sort(), ["intensity", "postgres"]);
  t.deepEqual(Object.keys(gpuHost.services), ["agent"]);
  for (const [file, compose] of [
    ["central.yml", central],
    ["gpu-host.yml", gpuHost],
  ] as const) {
    t.false("name" in compose, `${file}: docker-compose 1.29 rejects a top-level name`);
    t.false("version" in compose, `${file}: the Compose Specification has no version key`);
    for (const [name, s] of Object.entries(compose.services as Obj)) t.truthy(s.hostname, `${file}: ${name} sets hostname`);
    for (const [name, s] of Object.entries(compose.services as Obj))
      if (s.build) t.is(s.build, "../..", `${name} is built from the repository root`);
    const declared = Object.keys(compose.volumes ?? {});
    for (const s of Object.values(compose.services as Obj)) {
      for (const v of (s.volumes ?? []) as string[])
        if (!v.startsWith("/")) t.true(declared.includes(v.split(":")[0]!), `volume ${v} is declared`);
    }
  }
});

test("gpu-host: the agent reaches the central service at ${CARBONMON_INTENSITY_ADDR} (required), and gets the host's name", (t) => {
  t.regex(env(gpuHost, "agent").CARBONMON_INTENSITY_ADDR!, /^\$\{CARBONMON_INTENSITY_ADDR:\?[^}]+\}$/);
  t.regex(gpuHost.services.agent.hostname, /^\$\{HOSTNAME:\?[^}]+\}$/);
  t.throws(
    () => interpolate(files.gpuHost, { HOSTNAME: "gpu-07" }),
    { message: /CARBONMON_INTENSITY_ADDR: set CARBONMON_INTENSITY_ADDR/ },
    "compose refuses to start without it",
  );
  t.false(files.gpuHost.includes("depends_on"), "nothing central is started beside the agent");
});

test("NVIDIA: only the agent sees the GPUs (runtime variables, device reservation); central has none", (t) => {
  const agent = env(gpuHost, "agent");
  t.is(agent.NVIDIA_VISIBLE_DEVICES, "all");
  t.is(agent.NVIDIA_DRIVER_CAPABILITIES, "utility");
  t.deepEqual(gpuHost.services.agent.deploy.resources.reservations.devices, [{ driver: "nvidia", count: "all", capabilities: ["gpu"] }]);
  t.false(
    /NVIDIA_/.test(
      files.central
        .split("\n")
        .filter((l) => !l.trim().startsWith("#"))
        .join("\n"),
    ),
    "no NVIDIA variable in central.yml",
  );
  for (const s of Object.values(central.services as Obj)) t.is(s.deploy, undefined);
  t.true(gpuHost.services.agent.volumes.includes("/sys/class/powercap:/host/powercap:ro"));
  t.is(agent.CARBONMON_POWERCAP_ROOT, "/host/powercap");
});

test("central: the intensity service uses PostgreSQL, started healthy first, never published", (t) => {
  const pg = central.services.postgres;
  t.regex(pg.image, /^postgres:15/);
  t.is(pg.ports, undefined, "PostgreSQL is reachable only on the project network");
  t.deepEqual(central.services.intensity.depends_on, { postgres: { condition: "service_healthy" } });
  t.is(pg.healthcheck.test[1], "pg_isready");
  const url = interpolate(env(central, "intensity").CARBONMON_DATABASE_URL!, { POSTGRES_PASSWORD: "pw" });
  t.is(url, `postgres://${pg.environment.POSTGRES_USER}:pw@postgres:5432/${pg.environment.POSTGRES_DB}`);
  t.throws(() => interpolate(files.central, {}), { message: /POSTGRES_PASSWORD/ }, "no default password");
  t.is(central.services.intensity.user, "node");
});

test("every carbonmon variable is a setting of the service that gets it, and the interpolated settings validate", (t) => {
  const vars = { HOSTNAME: "gpu-07", CARBONMON_INTENSITY_ADDR: "central.example.org:50061", POSTGRES_PASSWORD: "pw" };
  for (const [compose, name, service, text] of [
    [gpuHost, "agent", "agent", files.gpuHost],
    [central, "intensity", "intensity", files.central],
  ] as const) {
    for (const key of Object.keys(env(compose, name))) {
      if (!OURS.test(key)) {
        t.true(service === "agent" && /^NVIDIA_/.test(key), `${name}: unexpected variable ${key}`);
        continue;
      }
      const setting = SETTINGS.find((s) => s.env === key);
      t.truthy(setting, `${key} is a setting`);
      t.true((setting?.services as readonly Service[] | undefined)?.includes(service), `${key} is a setting of ${service}`);
    }
    for (const m of text.matchAll(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?/g)) {
      if (!OURS.test(m[1]!)) continue;
      const setting = SETTINGS.find((s) => s.env === m[1]);
      t.truthy(setting, `\${${m[1]}} is a setting`);
      if (m[2])
        t.is<string | undefined, string | undefined>(
          m[2],
          setting && "default" in setting ? setting.default : undefined,
          `${m[1]}'s default is the setting's`,
        );
    }
    const resolved = Object.fromEntries(Object.entries(env(compose, name)).map(([k, v]) => [k, interpolate(String(v), vars)]));
    if (service === "agent") t.is(loadAgentConfig({ env: resolved }).intensityAddr, "central.example.org:50061");
    else t.is(loadIntensityConfig({ env: resolved }).databaseUrl, "postgres://carbonmon:pw@postgres:5432/carbonmon");
  }
});

test("the README says which Compose version the files need", (t) => {
  const section = readme.slice(readme.indexOf("## Deployment"));
  t.regex(section, /deploy\/compose\/central\.yml/);
  t.regex(section, /deploy\/compose\/gpu-host\.yml/);
  t.regex(section, /docker-compose (>=|≥) ?1\.28/);
});
