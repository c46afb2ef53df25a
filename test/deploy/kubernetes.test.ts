/**
 * deploy/kubernetes: every manifest validates against the Kubernetes schemas (kubernetes-models), every
 * environment variable is a real setting of the service it is given to (or its *_FILE form, an NVIDIA
 * runtime variable, or a downward-API value expanded into one), the settings pass the services' own
 * validation, and the pieces fit together (selectors, ports, probes, mounts, the Secret's keys).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import test from "ava";
import { parseAllDocuments } from "yaml";
import { loadAgentConfig, loadIntensityConfig, SETTINGS, type Service } from "../../server/shared/config.js";

const DIR = fileURLToPath(new URL("../../deploy/kubernetes/", import.meta.url));
const NVIDIA = new Set(["NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES"]);

type Obj = Record<string, any>;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : e.name.endsWith(".yaml") ? [join(dir, e.name)] : [],
  );
}

const files = yamlFiles(DIR);
const docs = files.flatMap((file) =>
  parseAllDocuments(readFileSync(file, "utf8")).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return { file: relative(DIR, file), doc: d.toJS() as Obj };
  }),
);
const manifests = docs.filter((d) => !d.file.endsWith("kustomization.yaml"));
const find = (kind: string, name: string): Obj => {
  const m = manifests.find((d) => d.doc.kind === kind && d.doc.metadata?.name === name);
  if (!m) throw new Error(`no ${kind} ${name}`);
  return m.doc;
};
const daemonSet = find("DaemonSet", "carbonmon-agent");
const deployment = find("Deployment", "carbonmon-intensity");
const secret = find("Secret", "carbonmon-intensity");
const agent = daemonSet.spec.template.spec.containers[0] as Obj;
const intensity = deployment.spec.template.spec.containers[0] as Obj;

test("every manifest validates against the Kubernetes schema of its apiVersion and kind", async (t) => {
  t.true(manifests.length >= 8);
  for (const { file, doc } of manifests) {
    if (doc.apiVersion === "monitoring.coreos.com/v1") continue; // a CRD: checked in its own test
    const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : ["", doc.apiVersion];
    const module = (await import(`kubernetes-models/${group ? `${group}/` : ""}${version}/${doc.kind}`)) as Record<
      string,
      new (
        o: Obj,
      ) => { validate(): void }
    >;
    const Model = module[doc.kind];
    t.truthy(Model, `${file}: ${doc.apiVersion} ${doc.kind} is a Kubernetes kind`);
    t.notThrows(() => new Model!(doc).validate(), `${file}: ${doc.kind} ${doc.metadata?.name}`);
  }
});

test("kustomizations list every manifest of their folder, and every file they list exists", (t) => {
  for (const k of docs.filter((d) => d.file.endsWith("kustomization.yaml"))) {
    const folder = join(DIR, k.file, "..");
    const listed = (k.doc.resources ?? []) as string[];
    const present = readdirSync(folder).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
    t.deepEqual([...listed].sort(), present.sort(), `${k.file}: resources`);
  }
  const root = docs.find((d) => d.file === "kustomization.yaml")!.doc;
  t.is(root.namespace, "carbonmon");
  t.true(
    root.images.some((i: Obj) => i.name === agent.image),
    "the image is set in one place",
  );
  t.is(docs.find((d) => d.file === "monitoring/kustomization.yaml")!.doc.kind, "Component", "monitoring is opt-in");
});

/** Every variable given to a container, checked against the settings of `service`. */
function checkEnv(t: import("ava").ExecutionContext, container: Obj, service: Service): void {
  const env = container.env as Obj[];
  const values = env.map((e) => String(e.value ?? "")).join("\n");
  for (const e of env) {
    const name = e.name as string;
    const setting = SETTINGS.find((s) => s.env === name || (`${s.env}_FILE` === name && "secret" in s));
    if (setting) {
      t.true((setting.services as readonly Service[]).includes(service), `${name} is not a setting of '${service}'`);
      // A setting is a value or a downward-API field (the node name); a secret is a mounted file.
      const given = "value" in e || (e.valueFrom as Obj | undefined)?.fieldRef !== undefined;
      t.is(
        setting.env === name ? given : e.value.startsWith("/etc/carbonmon/secrets/"),
        true,
        `${name}: a value (secrets: a mounted file)`,
      );
    } else if (NVIDIA.has(name)) {
      t.is(service, "agent", `${name}: only the agent needs the NVIDIA runtime`);
    } else {
      t.truthy(e.valueFrom?.fieldRef, `${name} is neither a setting, its _FILE form, an NVIDIA variable nor a downward-API value`);
      t.true(values.includes(`$(${name})`), `${name}: a downward-API value must be expanded into a setting`);
    }
  }
  for (const s of ["ELECTRICITYMAPS_API_TOKEN", "WATTTIME_PASSWORD", "WATTTIME_USERNAME", "CARBONMON_DATABASE_URL"]) {
    t.false(
      env.some((e) => e.name === s),
      `${s} comes from a file, never an environment value`,
    );
  }
}

test("every environment variable is a real setting of its service (or a documented exception)", (t) => {
  checkEnv(t, agent, "agent");
  checkEnv(t, intensity, "intensity");
});

/** The container's environment as the kubelet would resolve it, with secrets written to files. */
function resolvedEnv(container: Obj, dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of container.env as Obj[]) {
    if (e.valueFrom) out[e.name] = "10.1.2.3";
    else out[e.name] = String(e.value).replace(/\$\(([A-Z_]+)\)/g, (_m, n: string) => out[n] ?? "");
  }
  for (const [k, v] of Object.entries(out)) {
    if (!v.startsWith("/etc/carbonmon/secrets/")) continue;
    const key = v.slice("/etc/carbonmon/secrets/".length);
    const file = join(dir, key);
    writeFileSync(file, String(secret.stringData[key]));
    out[k] = file;
  }
  return out;
}

test("the manifests' settings pass the services' own validation", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-k8s-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = loadAgentConfig({ env: resolvedEnv(agent, dir) });
  t.is(a.listen, "10.1.2.3:50051");
  t.is(a.intensityAddr, "carbonmon-intensity.carbonmon.svc.cluster.local:50061");
  const i = loadIntensityConfig({ env: resolvedEnv(intensity, dir) });
  t.regex(i.databaseUrl ?? "", /^postgres:\/\//, "the replicas share PostgreSQL");
  t.is(i.electricitymapsApiToken, undefined, "an empty key is unset");
});

test("agent: a DaemonSet on GPU nodes through the NVIDIA runtime, taking no GPU, reading the host's powercap tree read-only", (t) => {
  const pod = daemonSet.spec.template.spec;
  t.deepEqual(pod.nodeSelector, { "nvidia.com/gpu.present": "true" });
  t.is(pod.runtimeClassName, "nvidia");
  const env = Object.fromEntries((agent.env as Obj[]).map((e) => [e.name, e.value]));
  t.is(env.NVIDIA_VISIBLE_DEVICES, "all");
  t.is(env.NVIDIA_DRIVER_CAPABILITIES, "utility");
  t.false(JSON.stringify(agent.resources).includes("nvidia.com/gpu"), "no nvidia.com/gpu request or limit");
  const volume = (name: string) => (pod.volumes as Obj[]).find((v) => v.name === name)!;
  const mountAt = (path: string) => (agent.volumeMounts as Obj[]).find((m) => m.mountPath === path)!;
  const powercap = mountAt(env.CARBONMON_POWERCAP_ROOT);
  t.true(powercap.readOnly);
  t.is(volume(powercap.name).hostPath.path, "/sys/class/powercap");
  const data = mountAt(env.CARBONMON_DATA_DIR);
  t.truthy(volume(data.name).hostPath, "windows survive pod restarts in a host directory");
  t.true(pod.hostNetwork, "GetHost reports the node's hostname");
  t.is(pod.dnsPolicy, "ClusterFirstWithHostNet", "the intensity Service's name still resolves");
  const nodeIp = (agent.env as Obj[]).find((e) => e.name === "NODE_IP");
  t.is(nodeIp?.valueFrom.fieldRef.fieldPath, "status.hostIP");
  t.deepEqual(agent.securityContext.capabilities.drop, ["ALL"]);
  t.false(agent.securityContext.allowPrivilegeEscalation);
});

test("both: native gRPC liveness and readiness probes on the port each service listens on; readiness names the service", (t) => {
  for (const [c, port, service] of [
    [agent, 50051, "carbonmon.agent.v1.EnergyMonitor"],
    [intensity, 50061, "carbonmon.intensity.v1.CarbonIntensity"],
  ] as const) {
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) t.is(c[probe].grpc.port, port, `${c.name} ${probe}`);
    t.is(c.readinessProbe.grpc.service, service);
    t.true((c.ports as Obj[]).some((p) => p.containerPort === port));
    const listen = (c.env as Obj[]).find((e) => /_LISTEN$/.test(e.name))!.value as string;
    t.true(listen.endsWith(`:${port}`));
  }
});

test("both: resource requests and limits on every container", (t) => {
  for (const c of [agent, intensity]) {
    for (const kind of ["requests", "limits"])
      for (const r of ["cpu", "memory"]) t.truthy(c.resources?.[kind]?.[r], `${c.name}: ${kind}.${r}`);
  }
});

test("intensity: 3 replicas, a PodDisruptionBudget that keeps 2, Services whose selectors and ports match the pods", (t) => {
  t.is(deployment.spec.replicas, 3);
  const labels = deployment.spec.template.metadata.labels as Obj;
  const matches = (selector: Obj, podLabels: Obj) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);
  const pdb = find("PodDisruptionBudget", "carbonmon-intensity");
  t.true(matches(pdb.spec.selector.matchLabels, labels));
  t.is(pdb.spec.minAvailable, 2);
  t.true(matches(deployment.spec.selector.matchLabels, labels));
  for (const [svc, pod, container] of [
    ["carbonmon-intensity", deployment, intensity],
    ["carbonmon-agent", daemonSet, agent],
  ] as const) {
    const service = find("Service", svc);
    t.true(matches(service.spec.selector, pod.spec.template.metadata.labels), `${svc}: selector`);
    for (const p of service.spec.ports as Obj[]) {
      t.true(
        (container.ports as Obj[]).some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort),
        `${svc}: targetPort ${p.targetPort}`,
      );
    }
  }
  t.is(find("Service", "carbonmon-agent").spec.internalTrafficPolicy, "Local", "a job reaches the agent of its own node");
});

test("intensity: credentials come from the Secret, mounted read-only as files, one key per *_FILE", (t) => {
  const pod = deployment.spec.template.spec;
  const mount = (intensity.volumeMounts as Obj[]).find((m) => m.mountPath === "/etc/carbonmon/secrets")!;
  t.true(mount.readOnly);
  t.is((pod.volumes as Obj[]).find((v) => v.name === mount.name)!.secret.secretName, secret.metadata.name);
  const keys = (intensity.env as Obj[]).filter((e) => e.name.endsWith("_FILE")).map((e) => (e.value as string).split("/").pop());
  t.deepEqual([...keys].sort(), Object.keys(secret.stringData).sort());
  t.true(intensity.securityContext.readOnlyRootFilesystem);
  t.true(pod.securityContext.runAsNonRoot);
});

test("monitoring (optional): the ServiceMonitor selects the metrics Services by label and scrapes their named port", (t) => {
  const monitor = manifests.find((d) => d.doc.kind === "ServiceMonitor")!.doc;
  t.is(monitor.apiVersion, "monitoring.coreos.com/v1");
  const services = manifests.filter((d) => d.doc.kind === "Service" && d.file.startsWith("monitoring/")).map((d) => d.doc);
  t.is(services.length, 2);
  for (const s of services) {
    t.true(
      Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels[k] === v),
      `${s.metadata.name} is selected`,
    );
    t.true(
      monitor.spec.endpoints.every((e: Obj) => (s.spec.ports as Obj[]).some((p) => p.name === e.port)),
      `${s.metadata.name} has the port`,
    );
  }
  t.false(
    manifests.some((d) => d.doc.kind === "Service" && !d.file.startsWith("monitoring/") && d.doc.metadata.labels["carbonmon.io/metrics"]),
    "no base Service is scraped",
  );
});
