/**
 * The container packaging: docker-compose.yml (parsed with `yaml`), the Dockerfile and .dockerignore (read
 * as text; no Docker engine is needed). Every variable they use must be a declared setting, the values
 * they pass must pass the services' own validation, and the health check must work against a real server.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { parse } from "yaml";
import { loadAgentConfig, loadIntensityConfig, SETTINGS, type Service } from "../server/shared/config.js";
import { SERVICE_NODE_FLAGS } from "../bench/lib.js";
import { insecurity } from "../server/shared/security/server-security.js";
import { startTestIntensity } from "./helpers/grpc.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), "utf8");

const composeText = read("docker-compose.yml");
const dockerfile = read("Dockerfile");
const dockerignore = read(".dockerignore");

interface ComposeService {
  build?: unknown;
  command?: unknown;
  user?: string;
  environment?: Record<string, string | number | null>;
  ports?: unknown[];
  volumes?: unknown[];
  depends_on?: unknown;
  healthcheck?: { test?: unknown; interval?: string; timeout?: string; retries?: number };
  secrets?: string[];
  deploy?: { resources?: { reservations?: { devices?: Array<Record<string, unknown>> } } };
}

interface Compose {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  secrets?: Record<string, { file?: string }>;
}

const compose = parse(composeText) as Compose;
const service = (name: string): ComposeService => {
  const s = compose.services?.[name];
  if (!s) throw new Error(`docker-compose.yml has no service ${name}`);
  return s;
};
const env = (name: string): Record<string, string> =>
  Object.fromEntries(Object.entries(service(name).environment ?? {}).map(([k, v]) => [k, v === null ? "" : String(v)]));

/** Compose interpolation of ${VAR}, ${VAR:-default}, ${VAR-default} and $$, against `vars`. */
function interpolate(text: string, vars: Record<string, string | undefined>): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}/g,
    (all, name: string | undefined, op: string | undefined, dflt: string | undefined) => {
      if (all === "$$") return "$";
      const value = vars[name!];
      if (op === ":-") return value ? value : (dflt ?? "");
      if (op === "-") return value ?? dflt ?? "";
      return value ?? "";
    },
  );
}

const settingNames = new Set<string>(SETTINGS.map((s) => s.env));
const secretSettings = new Set<string>(SETTINGS.filter((s) => "secret" in s).map((s) => s.env));
/** A variable compose may set: a setting, or the file form (<VAR>_FILE) of a secret one. */
const settingOf = (key: string): string | undefined =>
  settingNames.has(key) ? key : secretSettings.has(key.replace(/_FILE$/, "")) ? key.replace(/_FILE$/, "") : undefined;
const servicesOf = (name: string): readonly Service[] => SETTINGS.find((s) => s.env === name)?.services ?? [];
const OURS = /^(CARBONMON|ELECTRICITYMAPS|WATTTIME)_[A-Z0-9_]+$/;

test("compose: both services are built from this repository, with their commands and ports", (t) => {
  t.deepEqual(Object.keys(compose.services).sort(), ["agent", "intensity"]);
  for (const name of ["agent", "intensity"]) t.is(service(name).build, ".", `${name} is built from .`);
  t.deepEqual(service("intensity").command, ["intensity"]);
  t.deepEqual(service("agent").command, ["agent"]);
  t.true((service("intensity").ports ?? []).map(String).includes("50061:50061"));
  t.true((service("agent").ports ?? []).map(String).includes("50051:50051"));
  t.is(env("intensity").CARBONMON_INTENSITY_LISTEN, "0.0.0.0:50061");
  t.is(env("agent").CARBONMON_AGENT_LISTEN, "0.0.0.0:50051");
});

test("compose: the agent reaches the intensity service by its service name and starts after it", (t) => {
  const [host, port] = env("agent").CARBONMON_INTENSITY_ADDR!.split(":");
  t.is(host, "intensity");
  t.is(port, env("intensity").CARBONMON_INTENSITY_LISTEN!.split(":")[1]);
  const dependsOn = service("agent").depends_on;
  t.true(Array.isArray(dependsOn) ? dependsOn.includes("intensity") : Object.keys(dependsOn as object).includes("intensity"));
});

test("compose: the agent reserves every NVIDIA GPU and reads the host's powercap tree read-only", (t) => {
  const devices = service("agent").deploy?.resources?.reservations?.devices ?? [];
  t.deepEqual(devices, [{ driver: "nvidia", count: "all", capabilities: ["gpu"] }]);
  t.is(env("agent").CARBONMON_POWERCAP_ROOT, "/host/powercap");
  t.true((service("agent").volumes ?? []).includes("/sys/class/powercap:/host/powercap:ro"));
  t.is(service("intensity").deploy, undefined, "the intensity service needs no GPU");
});

test("compose: each service keeps its data in a declared named volume at CARBONMON_DATA_DIR", (t) => {
  const declared = Object.keys(compose.volumes ?? {});
  const used = new Set<string>();
  for (const name of ["agent", "intensity"]) {
    const dataDir = env(name).CARBONMON_DATA_DIR;
    t.is(dataDir, "/var/lib/carbonmon", `${name}: CARBONMON_DATA_DIR`);
    const mount = (service(name).volumes ?? []).map(String).find((v) => v.split(":")[1] === dataDir);
    t.truthy(mount, `${name} mounts a volume at ${dataDir}`);
    const source = mount!.split(":")[0]!;
    t.true(declared.includes(source), `${name}: volume ${source} is declared`);
    t.false(used.has(source), "one volume per service");
    used.add(source);
  }
});

test("compose: every variable is a declared setting of the service that gets it, and credentials come as files", (t) => {
  const referenced = [...composeText.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
  for (const name of referenced.filter((n) => OURS.test(n))) t.true(settingNames.has(name), `\${${name}} is not a setting (typo?)`);
  for (const name of ["agent", "intensity"] as const) {
    for (const key of Object.keys(env(name)).filter((k) => OURS.test(k))) {
      t.truthy(settingOf(key), `${name}: ${key} is not a setting (typo?)`);
      t.true(servicesOf(settingOf(key) ?? key).includes(name), `${name}: ${key} is not a setting of '${name}'`);
    }
  }
  // Anything else set is for the NVIDIA runtime, nothing invented.
  for (const name of ["agent", "intensity"]) {
    for (const key of Object.keys(env(name)).filter((k) => !OURS.test(k))) t.regex(key, /^NVIDIA_/, `${name}: unexpected variable ${key}`);
  }
  const intensity = env("intensity");
  for (const name of ["CARBONMON_PROVIDERS", "CARBONMON_INTENSITY_CONSTANTS"]) {
    t.regex(intensity[name] ?? "", new RegExp(`^\\$\\{${name}:-[^}]*\\}$`), `intensity: ${name} is passed through from the environment`);
  }
  for (const name of ["ELECTRICITYMAPS_API_TOKEN", "WATTTIME_USERNAME", "WATTTIME_PASSWORD"]) {
    t.is(intensity[name], undefined, `intensity: ${name} is never in the environment`);
    t.regex(intensity[`${name}_FILE`] ?? "", /^\/run\/secrets\/[a-z_]+$/, `intensity: ${name}_FILE names a compose secret`);
  }
  t.is(env("agent").CARBONMON_LOCATION, "${CARBONMON_LOCATION:-}");
  t.false(/ELECTRICITYMAPS_API_TOKEN|WATTTIME_PASSWORD/.test(JSON.stringify(service("agent"))), "the agent gets no credentials");
});

test("compose: every file a service is pointed at is a compose secret it is given, from a file under ./secrets", (t) => {
  for (const name of ["agent", "intensity"]) {
    const given = service(name).secrets ?? [];
    for (const [key, value] of Object.entries(env(name)).filter(([, v]) => v.startsWith("/run/secrets/"))) {
      const secret = value.slice("/run/secrets/".length);
      t.true(given.includes(secret), `${name}: ${key} names secret ${secret}, which the service is given`);
      t.regex(compose.secrets?.[secret]?.file ?? "", /^\.\/secrets\//, `secret ${secret} is a file under ./secrets`);
    }
    for (const key of ["CARBONMON_TLS_CERT_FILE", "CARBONMON_TLS_KEY_FILE", "CARBONMON_AUTH_TOKENS_FILE"])
      t.regex(env(name)[key] ?? "", /^\/run\/secrets\//, `${name}: ${key}`);
  }
  t.true(dockerignore.split("\n").includes("secrets"), "./secrets stays out of the image's build context");
});

test("compose: defaults in ${VAR:-default} are the settings' own defaults", (t) => {
  for (const m of composeText.matchAll(/\$\{([A-Z0-9_]+):-([^}]*)\}/g)) {
    const setting = SETTINGS.find((s) => s.env === m[1]);
    if (!setting || m[2] === "") continue;
    t.is(m[2], "default" in setting ? setting.default : undefined, `${m[1]}'s default`);
  }
});

test("compose: the interpolated environment passes each service's own validation, and serves 0.0.0.0 only securely", (t) => {
  // The secrets as compose mounts them: files (empty provider credentials: that provider is unused).
  const secrets = mkdtempSync(join(tmpdir(), "carbonmon-secrets-"));
  t.teardown(() => rmSync(secrets, { recursive: true, force: true }));
  for (const name of Object.keys(compose.secrets ?? {})) writeFileSync(join(secrets, name), "");
  // A sampling period above the idle default must not trip the idle period's check (compose leaves it unset).
  for (const vars of [
    {},
    {
      CARBONMON_PROVIDERS: "static,offline",
      CARBONMON_INTENSITY_CONSTANTS: "DE=300",
      CARBONMON_LOCATION: "DE",
      CARBONMON_SAMPLING_PERIOD_MS: "2000",
    },
  ]) {
    const resolved = (name: string): Record<string, string> =>
      Object.fromEntries(Object.entries(env(name)).map(([k, v]) => [k, interpolate(v, vars).replace(/^\/run\/secrets\//, `${secrets}/`)]));
    let agent: ReturnType<typeof loadAgentConfig> | undefined;
    let intensity: ReturnType<typeof loadIntensityConfig> | undefined;
    t.notThrows(() => void (agent = loadAgentConfig({ env: resolved("agent"), argv: [] })));
    t.is(agent?.intensityAddr, "intensity:50061");
    t.is(agent?.powercapRoot, "/host/powercap");
    t.notThrows(() => void (intensity = loadIntensityConfig({ env: resolved("intensity"), argv: [] })));
    t.is(intensity?.listen, "0.0.0.0:50061");
    t.is(intensity?.electricitymapsApiToken, undefined, "an unset token is not an empty token");
    t.is(insecurity(agent!.security, agent!.listen), undefined, "the agent: TLS and tokens");
    t.is(insecurity(intensity!.security, intensity!.listen), undefined, "the intensity service: TLS and tokens");
    t.truthy(
      agent?.intensitySecurity.caFile && agent.intensitySecurity.tokenFile,
      "the agent calls the intensity service over TLS with a token",
    );
  }
});

test("compose: the health checks call grpc.health.v1 and pass against a real server", async (t) => {
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "offline" });
  t.teardown(() => intensity.close());
  for (const [name, port] of [
    ["intensity", "50061"],
    ["agent", "50051"],
  ] as const) {
    const check = service(name).healthcheck;
    t.truthy(check, `${name} has a health check`);
    const argv = check!.test as string[];
    t.is(argv[0], "CMD");
    t.is(argv[1], "node");
    t.is(argv[2], "-e");
    t.is(argv[4], `127.0.0.1:${port}`);
    t.false(argv[3]!.includes("$"), "no $ for compose to interpolate");
    // The same script, pointed at a live server: exit 0; at a closed port: non-zero.
    await t.notThrowsAsync(promisify(execFile)("node", ["-e", argv[3]!, intensity.running.address], { cwd: ROOT, timeout: 20_000 }));
    await t.throwsAsync(promisify(execFile)("node", ["-e", argv[3]!, "127.0.0.1:1"], { cwd: ROOT, timeout: 20_000 }));
  }
});

/** Dockerfile instructions, with continuation lines joined and comments dropped. */
function instructions(text: string): Array<{ op: string; args: string }> {
  return text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(" ") };
    });
}

const steps = instructions(dockerfile);
const args = (op: string): string[] => steps.filter((s) => s.op === op).map((s) => s.args);
const argDefaults = Object.fromEntries(args("ARG").map((a) => a.split("=") as [string, string]));
const froms = args("FROM").map((a) => interpolate(a, argDefaults));

test("Dockerfile: a node:20-bookworm-slim build stage with a C++ toolchain, and a runtime stage", (t) => {
  t.true(froms.length >= 2, "multi-stage");
  for (const from of froms) t.regex(from, /^node:20-bookworm-slim\b/);
  t.regex(froms[0]!, /\sAS\s+build$/i);
  const buildStage = dockerfile.slice(0, dockerfile.search(/^FROM .*\bAS\s+runtime/im));
  for (const pkg of ["python3", "make", "g++"])
    t.true(new RegExp(`apt-get install[^\\n]*\\s${pkg.replace("+", "\\+")}(\\s|$)`, "m").test(buildStage), `build stage installs ${pkg}`);
  t.true(
    args("RUN").some((r) => /\bnpm ci\b.*--omit=dev/.test(r)),
    "npm ci --omit=dev",
  );
  t.true(
    args("COPY").some((c) => c.startsWith("--from=build ") && c.includes("node_modules")),
    "the runtime copies node_modules from the build stage",
  );
});

test("Dockerfile: the image runs the compiled dist/, built in its own stage, and holds no TypeScript sources or tsx", (t) => {
  const stages = dockerfile.split(/^(?=FROM )/m).filter((s) => s.startsWith("FROM "));
  const named = (name: string) => stages.find((s) => new RegExp(`^FROM .*\\sAS\\s+${name}\\s*$`, "im").test(s.split("\n")[0]!));
  const compile = named("compile");
  const runtime = named("runtime");
  t.truthy(compile, "a compile stage");
  t.truthy(runtime, "a runtime stage");
  const compileSteps = instructions(compile ?? "");
  t.true(
    compileSteps.some((s) => s.op === "RUN" && /\bnpm run build\b/.test(s.args)),
    "the compile stage runs npm run build (tsconfig.build.json)",
  );
  for (const source of ["tsconfig.build.json", "bin", "server", "client", "proto"]) {
    t.true(
      compileSteps.some((s) => s.op === "COPY" && s.args.split(/\s+/).includes(source)),
      `the compile stage copies ${source}`,
    );
  }
  const runtimeCopies = instructions(runtime ?? "")
    .filter((s) => s.op === "COPY")
    .map((s) => s.args);
  t.true(
    runtimeCopies.some((c) => /^--from=compile\s+\/app\/dist\s/.test(c)),
    "the runtime copies dist/ from the compile stage",
  );
  t.deepEqual(
    runtimeCopies.filter((c) => !c.startsWith("--from=")).flatMap((c) => c.split(/\s+/).slice(0, -1)),
    ["package.json", "proto/carbonmon", "proto/gen/descriptors.binpb"],
    "the runtime copies no TypeScript sources",
  );
  // The production install leaves the prepare script (tsc, a dev dependency) to the compile stage.
  t.true(
    args("RUN").some((r) => /npm pkg delete scripts\.prepare\b.*\bnpm ci\b.*--omit=dev/.test(r)),
    "npm ci --omit=dev without the prepare script",
  );
  const pkg = JSON.parse(read("package.json")) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
    scripts: Record<string, string>;
  };
  t.false("tsx" in pkg.dependencies, "tsx is not a runtime dependency");
  t.true("tsx" in pkg.devDependencies);
  t.regex(pkg.scripts.prepare ?? "", /\bnpm run build\b/);
});

test("Dockerfile: entry point, ports, data volume and settings", (t) => {
  t.deepEqual(JSON.parse(args("ENTRYPOINT").at(-1)!), ["node", "dist/bin/carbonmon.js"]);
  t.deepEqual(JSON.parse(args("CMD").at(-1)!), ["serve"]);
  t.true(existsSync(new URL("../bin/carbonmon.ts", import.meta.url)), "dist/bin/carbonmon.js is compiled from bin/carbonmon.ts");
  t.regex(read("bin/carbonmon.ts"), /carbonmon serve\b/, "serve (the default command) is a command of the CLI");
  const exposed = args("EXPOSE").join(" ").split(/\s+/);
  t.true(exposed.includes("50051") && exposed.includes("50061"));
  t.true(args("VOLUME").some((v) => v.includes("/var/lib/carbonmon")));
  const envText = args("ENV").join(" ");
  t.regex(envText, /\bCARBONMON_DATA_DIR=\/var\/lib\/carbonmon\b/);
  for (const m of envText.matchAll(/\b([A-Z][A-Z0-9_]*)=/g)) {
    if (OURS.test(m[1]!)) t.true(settingNames.has(m[1]!), `Dockerfile ENV ${m[1]} is not a setting (typo?)`);
  }
  t.regex(dockerfile, /root/i, "documents that the agent needs root for RAPL");
  t.regex(dockerfile, /NVIDIA Container (Toolkit|runtime)/i, "documents the NVIDIA container runtime");
});

test("Dockerfile: every copied path exists, and .dockerignore keeps it in the build context", (t) => {
  const ignored = dockerignore
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  for (const entry of ["node_modules", ".git", "test/.build", ".tmp", ".device", "dist"])
    t.true(ignored.includes(entry), `.dockerignore: ${entry}`);
  for (const copy of args("COPY").filter((c) => !c.startsWith("--from="))) {
    const sources = copy
      .split(/\s+/)
      .filter((p) => !p.startsWith("--"))
      .slice(0, -1);
    for (const source of sources) {
      t.true(existsSync(new URL(`../${source}`, import.meta.url)), `COPY ${source}: exists`);
      t.false(
        ignored.some((i) => i === source || source.startsWith(`${i}/`)),
        `COPY ${source}: not in .dockerignore`,
      );
    }
  }
});

test("the services' V8 flags are the same wherever they start: the bins' shebangs, the image's NODE_OPTIONS, the benchmarks", (t) => {
  // bin/carbonmon.js: from a clone; bin/carbonmon.ts: compiled (tsc keeps the shebang) into the installed bin.
  for (const bin of ["bin/carbonmon.js", "bin/carbonmon.ts"]) {
    t.is(read(bin).split("\n")[0]!, `#!/usr/bin/env -S node ${SERVICE_NODE_FLAGS.join(" ")}`, bin);
  }
  const nodeOptions = /\bNODE_OPTIONS=(\S+)/.exec(args("ENV").join(" "));
  t.is(nodeOptions?.[1], SERVICE_NODE_FLAGS.join(" "));
  for (const flag of SERVICE_NODE_FLAGS)
    t.true(process.allowedNodeEnvironmentFlags.has(flag.split("=")[0]!), `${flag} is allowed in NODE_OPTIONS`);
});
