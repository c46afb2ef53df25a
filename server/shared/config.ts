/**
 * The only reader of environment variables and command-line flags. Every setting is declared once in
 * SETTINGS (the README's configuration table is checked against it); each service validates its settings
 * once at start-up and reports every bad one at once, with the variable's name and what is allowed.
 */
import { readFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join } from "node:path";
import { AppError, Code } from "./errors.js";

/** "client": the CLI's settings for reaching the services (bin/commands/). */
export type Service = "agent" | "intensity" | "client";

export interface Setting {
  env: string;
  flag: string;
  services: readonly Service[];
  /** Default as text; undefined: unset unless given. */
  default?: string;
  description: string;
  /** A credential: also read from the file named by <env>_FILE (a mounted Kubernetes or compose secret). */
  secret?: true;
}

const BOTH = ["agent", "intensity"] as const;
const AGENT = ["agent"] as const;
const INTENSITY = ["intensity"] as const;
const CLIENT = ["client"] as const;

export const SETTINGS = [
  {
    env: "CARBONMON_AGENT_LISTEN",
    flag: "--listen",
    services: AGENT,
    default: "127.0.0.1:50051",
    description: "host:port the agent listens on (0.0.0.0:50051 for remote clients)",
  },
  {
    env: "CARBONMON_INTENSITY_LISTEN",
    flag: "--listen",
    services: INTENSITY,
    default: "127.0.0.1:50061",
    description: "host:port the intensity service listens on",
  },
  {
    env: "CARBONMON_INTENSITY_ADDR",
    flag: "--intensity-addr",
    services: AGENT,
    description: "host:port of the intensity service; unset: carbon is disabled, energy is reported as usual",
  },
  {
    env: "CARBONMON_DATA_DIR",
    flag: "--data-dir",
    services: BOTH,
    default: "~/.local/state/carbonmon",
    description: "directory for the SQLite databases (agent.db, intensity.db)",
  },
  {
    env: "CARBONMON_DATABASE_URL",
    flag: "--database-url",
    services: INTENSITY,
    description:
      "PostgreSQL store shared by every replica of the intensity service (postgres://user:password@host:5432/database); unset: SQLite in CARBONMON_DATA_DIR (one replica)",
    secret: true,
  },
  {
    env: "CARBONMON_TLS_CERT_FILE",
    flag: "--tls-cert-file",
    services: BOTH,
    description: "PEM certificate chain the service presents; with CARBONMON_TLS_KEY_FILE: TLS (both files are read again on SIGHUP)",
  },
  { env: "CARBONMON_TLS_KEY_FILE", flag: "--tls-key-file", services: BOTH, description: "PEM private key of CARBONMON_TLS_CERT_FILE" },
  {
    env: "CARBONMON_TLS_CLIENT_CA_FILE",
    flag: "--tls-client-ca-file",
    services: BOTH,
    description: "PEM CA certificates: mutual TLS, clients without a certificate signed by one of them are refused",
  },
  {
    env: "CARBONMON_AUTH_TOKENS_FILE",
    flag: "--auth-tokens-file",
    services: BOTH,
    description:
      'JSON {"tokens":[{"name","sha256","scopes"}]} (`carbonmon token new` makes entries): every RPC but health checking needs `authorization: Bearer <token>`; read again on SIGHUP',
  },
  {
    env: "CARBONMON_AUTH_JWKS_FILE",
    flag: "--auth-jwks-file",
    services: BOTH,
    description:
      "JWKS (public keys) of an identity provider: JWTs it signs are accepted as tokens (scopes in the `scope` claim, name in `sub`); read again on SIGHUP",
  },
  {
    env: "CARBONMON_AUTH_JWT_ISSUER",
    flag: "--auth-jwt-issuer",
    services: BOTH,
    description: "the `iss` every accepted JWT must carry (required with CARBONMON_AUTH_JWKS_FILE)",
  },
  {
    env: "CARBONMON_AUTH_JWT_AUDIENCE",
    flag: "--auth-jwt-audience",
    services: BOTH,
    description: "the `aud` every accepted JWT must carry (required with CARBONMON_AUTH_JWKS_FILE)",
  },
  {
    env: "CARBONMON_INSECURE",
    flag: "--insecure",
    services: BOTH,
    default: "false",
    description: "true: serve on a non-loopback address without TLS and authentication (refused otherwise; logged as a warning)",
  },
  {
    env: "CARBONMON_INTENSITY_TLS_CA_FILE",
    flag: "--intensity-tls-ca-file",
    services: AGENT,
    description: "PEM CA certificates the intensity service's certificate is checked against; set: the agent calls it over TLS",
  },
  {
    env: "CARBONMON_INTENSITY_TLS_CERT_FILE",
    flag: "--intensity-tls-cert-file",
    services: AGENT,
    description: "PEM client certificate the agent presents to the intensity service (mutual TLS)",
  },
  {
    env: "CARBONMON_INTENSITY_TLS_KEY_FILE",
    flag: "--intensity-tls-key-file",
    services: AGENT,
    description: "PEM private key of CARBONMON_INTENSITY_TLS_CERT_FILE",
  },
  {
    env: "CARBONMON_INTENSITY_TOKEN_FILE",
    flag: "--intensity-token-file",
    services: AGENT,
    description: "file holding the token (scope intensity:read) the agent sends to the intensity service",
  },
  {
    env: "CARBONMON_MAX_OPEN_WINDOWS_PER_PRINCIPAL",
    flag: "--max-open-windows-per-principal",
    services: AGENT,
    default: "10000",
    description:
      "open windows one principal (token name or JWT subject) may hold at once (RESOURCE_EXHAUSTED beyond); with authentication only",
  },
  {
    env: "CARBONMON_MAX_STREAMS_PER_PRINCIPAL",
    flag: "--max-streams-per-principal",
    services: AGENT,
    default: "64",
    description: "WatchPower streams one principal may hold open at once (RESOURCE_EXHAUSTED beyond); with authentication only",
  },
  {
    env: "CARBONMON_CLIENT_TLS_CA_FILE",
    flag: "--tls-ca",
    services: CLIENT,
    description: "CLI: PEM CA certificates the services' certificates are checked against; set: TLS",
  },
  { env: "CARBONMON_CLIENT_TLS_CERT_FILE", flag: "--tls-cert", services: CLIENT, description: "CLI: PEM client certificate (mutual TLS)" },
  {
    env: "CARBONMON_CLIENT_TLS_KEY_FILE",
    flag: "--tls-key",
    services: CLIENT,
    description: "CLI: PEM private key of the client certificate",
  },
  {
    env: "CARBONMON_TOKEN_FILE",
    flag: "--token-file",
    services: CLIENT,
    description: "CLI and TypeScript client: file holding the token sent as `authorization: Bearer`",
  },
  {
    env: "CARBONMON_NVML_LIBRARY",
    flag: "--nvml-library",
    services: AGENT,
    default: "libnvidia-ml.so.1",
    description: "path or name of the NVML library",
  },
  {
    env: "CARBONMON_POWERCAP_ROOT",
    flag: "--powercap-root",
    services: AGENT,
    default: "/sys/class/powercap",
    description: "root of the RAPL powercap tree (a read-only bind mount in containers)",
  },
  {
    env: "CARBONMON_SAMPLING_PERIOD_MS",
    flag: "--sampling-period-ms",
    services: AGENT,
    default: "100",
    description: "how often energy counters are read, 10-10000 ms (NVML counters move every ~100 ms)",
  },
  {
    env: "CARBONMON_IDLE_SAMPLING_PERIOD_MS",
    flag: "--idle-sampling-period-ms",
    services: AGENT,
    default: "1000",
    description:
      "how often energy counters are read while no window or WatchPower stream is open, from the sampling period to 60000 ms (equal to it: never idle; unset: 1000, or the sampling period if that is longer); the first window or stream makes every device be read at once",
  },
  {
    env: "CARBONMON_IDLE_AFTER_MS",
    flag: "--idle-after-ms",
    services: AGENT,
    default: "5000",
    description:
      "how long sampling stays at full rate after the last window or WatchPower stream ends, 0-3600000 ms (windows begun and ended back to back do not wake the hardware each time)",
  },
  {
    env: "CARBONMON_FIRST_READING_TIMEOUT_MS",
    flag: "--first-reading-timeout-ms",
    services: AGENT,
    default: "10000",
    description:
      "how long the agent waits at start, before it opens its port, for every device's first reading, 0-600000 ms (a window begun before a device's first reading cannot be measured on it; 0: serve at once)",
  },
  {
    env: "CARBONMON_HOSTNAME",
    flag: "--hostname",
    services: AGENT,
    description:
      "the host name the agent reports (GetHost); unset: the machine's own (in Kubernetes, set it to the node name from the downward API)",
  },
  {
    env: "CARBONMON_SIMULATED_GPU",
    flag: "--simulated-gpu",
    services: AGENT,
    default: "false",
    description:
      "true: when no real GPU is found, add one labelled simulated GPU whose numbers are NOT measurements (what `carbonmon demo` uses on machines without a GPU)",
  },
  {
    env: "CARBONMON_JOURNAL_MODE",
    flag: "--journal-mode",
    services: AGENT,
    default: "write",
    description:
      "how window changes are journaled before they are answered: write (one write(2) per change) or mapped (the journal file mapped into memory: no system call, but a journal truncated from outside or on a full copy-on-write filesystem kills the agent with SIGBUS)",
  },
  {
    env: "CARBONMON_RAPL_MAX_POWER_W",
    flag: "--rapl-max-power-w",
    services: AGENT,
    default: "1000",
    description: "highest plausible power of one RAPL zone; sets how often zones are read so that no wrap is missed",
  },
  {
    env: "CARBONMON_MAX_OPEN_WINDOWS",
    flag: "--max-open-windows",
    services: AGENT,
    default: "100000",
    description: "open windows allowed at once (RESOURCE_EXHAUSTED beyond)",
  },
  {
    env: "CARBONMON_RETENTION_DAYS",
    flag: "--retention-days",
    services: AGENT,
    default: "7",
    description: "how long ended windows' results are kept",
  },
  {
    env: "CARBONMON_LOCATION",
    flag: "--location",
    services: BOTH,
    description:
      'where the electricity is used: "lat,lon", a zone ("DE", "CAISO_NORTH"), or "auto" (IP location of this host); the agent uses auto when it is unset',
  },
  {
    env: "CARBONMON_EMISSION_FACTOR",
    flag: "--emission-factor",
    services: AGENT,
    default: "lifecycle",
    description: "which emissions the agent's grams count: lifecycle (plants' whole life) or direct (combustion only)",
  },
  {
    env: "CARBONMON_ALLOW_ESTIMATED",
    flag: "--allow-estimated",
    services: AGENT,
    default: "true",
    description:
      "whether estimated intensities may price a window (false: only measured values; missing ones are filled from the fallback chain)",
  },
  {
    env: "CARBONMON_CARBON_TIMEOUT_MS",
    flag: "--carbon-timeout-ms",
    services: AGENT,
    default: "2000",
    description: "how long EndWindow waits for the intensity service before it returns the energy with carbon PENDING",
  },
  {
    env: "CARBONMON_CARBON_RETRY_MS",
    flag: "--carbon-retry-ms",
    services: AGENT,
    default: "30000",
    description: "first delay before pending or provisional grams are asked for again; it doubles up to 1 h (pending: 5 min)",
  },
  {
    env: "ELECTRICITYMAPS_API_TOKEN",
    flag: "--electricitymaps-api-token",
    services: INTENSITY,
    description: "ElectricityMaps auth-token; unset: ElectricityMaps is not used",
    secret: true,
  },
  {
    env: "CARBONMON_ELECTRICITYMAPS_URL",
    flag: "--electricitymaps-url",
    services: INTENSITY,
    default: "https://api.electricitymap.org/v3",
    description: "ElectricityMaps API base URL",
  },
  {
    env: "CARBONMON_ELECTRICITYMAPS_GRANULARITY",
    flag: "--electricitymaps-granularity",
    services: INTENSITY,
    default: "hourly",
    description:
      "ElectricityMaps temporalGranularity: hourly, 15_minutes or 5_minutes (a plan without it answers hourly; periods follow the answer)",
  },
  {
    env: "WATTTIME_USERNAME",
    flag: "--watttime-username",
    services: INTENSITY,
    description: "WattTime account; unset: WattTime is not used",
    secret: true,
  },
  { env: "WATTTIME_PASSWORD", flag: "--watttime-password", services: INTENSITY, description: "WattTime password", secret: true },
  {
    env: "CARBONMON_WATTTIME_URL",
    flag: "--watttime-url",
    services: INTENSITY,
    default: "https://api.watttime.org",
    description: "WattTime API base URL",
  },
  {
    env: "CARBONMON_UKGRID_URL",
    flag: "--ukgrid-url",
    services: INTENSITY,
    default: "https://api.carbonintensity.org.uk",
    description: "UK Carbon Intensity API base URL",
  },
  {
    env: "CARBONMON_PROVIDERS",
    flag: "--providers",
    services: INTENSITY,
    default: "electricitymaps,watttime,ukgrid,static,offline",
    description:
      "the fallback chain, in order (electricitymaps, watttime, ukgrid, static, offline); providers that are not configured or do not cover a zone are skipped",
  },
  {
    env: "CARBONMON_INTENSITY_CONSTANTS",
    flag: "--intensity-constants",
    services: INTENSITY,
    description: 'fixed intensities for the static provider, e.g. "DE=350,GB=180" (g/kWh; air-gapped sites, tests)',
  },
  {
    env: "CARBONMON_INTENSITY_CACHE_MAX_BYTES",
    flag: "--intensity-cache-max-bytes",
    services: INTENSITY,
    default: "67108864",
    description:
      "estimated bytes of answers the intensity service keeps in memory (64 MiB), least recently used first out; an answer larger than this alone is served but not kept; 0: keep none",
  },
  {
    env: "CARBONMON_IPINFO_URL",
    flag: "--ipinfo-url",
    services: BOTH,
    default: "http://ipinfo.io/json",
    description: "ipinfo-compatible endpoint used for CARBONMON_LOCATION=auto",
  },
  {
    env: "CARBONMON_AGENT_METRICS_LISTEN",
    flag: "--metrics-listen",
    services: AGENT,
    default: "127.0.0.1:9401",
    description: "host:port of the agent's Prometheus endpoint (GET /metrics); empty: no endpoint",
  },
  {
    env: "CARBONMON_INTENSITY_METRICS_LISTEN",
    flag: "--metrics-listen",
    services: INTENSITY,
    default: "127.0.0.1:9402",
    description: "host:port of the intensity service's Prometheus endpoint (GET /metrics); empty: no endpoint",
  },
  {
    env: "CARBONMON_ALLOW_NO_DEVICES",
    flag: "--allow-no-devices",
    services: AGENT,
    default: "false",
    description: "true: the agent's service health stays SERVING when no device can be read (otherwise NOT_SERVING until one can)",
  },
  {
    env: "CARBONMON_LOG_LEVEL",
    flag: "--log-level",
    services: BOTH,
    default: "info",
    description: "trace, debug, info, warn, error, fatal or silent (JSON logs on stderr)",
  },
] as const satisfies readonly Setting[];

/** How a service secures its port (server/shared/security/). Paths, never the secrets themselves. */
export interface SecurityConfig {
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  tlsClientCaFile: string | undefined;
  authTokensFile: string | undefined;
  jwksFile: string | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  /** Serve on a non-loopback address without TLS and authentication. */
  insecure: boolean;
}

/** How a client reaches a service: TLS files and a token file (paths; all unset: plaintext, no token). */
export interface ClientSecurityConfig {
  caFile: string | undefined;
  certFile: string | undefined;
  keyFile: string | undefined;
  tokenFile: string | undefined;
}

export interface AgentConfig {
  listen: string;
  security: SecurityConfig;
  /** How the agent calls the intensity service. */
  intensitySecurity: ClientSecurityConfig;
  maxOpenWindowsPerPrincipal: number;
  maxStreamsPerPrincipal: number;
  intensityAddr: string | undefined;
  dataDir: string;
  nvmlLibrary: string;
  powercapRoot: string;
  samplingPeriodMs: number;
  /** The sampling period while no window or stream is open, ≥ samplingPeriodMs (equal: never idle). */
  idleSamplingPeriodMs: number;
  idleAfterMs: number;
  firstReadingTimeoutMs: number;
  /** The host name the agent reports (GetHost); the machine's own unless set. */
  hostname: string;
  /** Add a labelled simulated GPU when no real one is found (demos). */
  simulatedGpu: boolean;
  /** How window changes are journaled (storage/journal.ts). */
  journalMode: "write" | "mapped";
  raplMaxPowerW: number;
  maxOpenWindows: number;
  retentionDays: number;
  location: string | undefined;
  emissionFactor: "lifecycle" | "direct";
  allowEstimated: boolean;
  carbonTimeoutMs: number;
  carbonRetryMs: number;
  ipinfoUrl: string;
  logLevel: string;
  /** host:port of the Prometheus endpoint; undefined: none. */
  metricsListen: string | undefined;
  /** Service health stays SERVING with no readable device. */
  allowNoDevices: boolean;
  /** The agent's own CUDA_VISIBLE_DEVICES (read, not a carbonmon setting); undefined: all GPUs. */
  cudaVisibleDevices: string | undefined;
}

export interface IntensityConfig {
  listen: string;
  security: SecurityConfig;
  dataDir: string;
  /** postgres://… for the shared PostgreSQL store; undefined: SQLite in dataDir. */
  databaseUrl: string | undefined;
  location: string | undefined;
  electricitymapsApiToken: string | undefined;
  electricitymapsUrl: string;
  electricitymapsGranularity: "hourly" | "15_minutes" | "5_minutes";
  watttimeUsername: string | undefined;
  watttimePassword: string | undefined;
  watttimeUrl: string;
  ukgridUrl: string;
  ipinfoUrl: string;
  logLevel: string;
  providers: string[];
  intensityConstants: string | undefined;
  /** The answer cache's budget, estimated bytes. */
  cacheMaxBytes: number;
  /** host:port of the Prometheus endpoint; undefined: none. */
  metricsListen: string | undefined;
}

export interface ConfigSource {
  env?: NodeJS.ProcessEnv;
  argv?: readonly string[];
}

export class ConfigError extends AppError {
  constructor(readonly problems: string[]) {
    super(Code.InvalidArgument, `invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

export const PROVIDER_NAMES = ["electricitymaps", "watttime", "ukgrid", "static", "offline"] as const;
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

const BARE_SWITCHES = new Set(["--insecure"]);

/** Reads one service's settings: flags override environment variables, which override defaults. */
class Reader {
  readonly problems: string[] = [];
  private readonly flags = new Map<string, string>();

  constructor(
    private readonly service: Service,
    private readonly env: NodeJS.ProcessEnv,
    argv: readonly string[],
  ) {
    this.parseFlags(argv);
  }

  private parseFlags(argv: readonly string[]): void {
    const known = new Set<string>(SETTINGS.filter((s) => s.services.includes(this.service as never)).map((s) => s.flag));
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i]!;
      const eq = arg.indexOf("=");
      const flag = eq > 0 ? arg.slice(0, eq) : arg;
      if (!known.has(flag)) {
        this.problems.push(`unknown option ${flag} for '${this.service}' (see --help)`);
        if (eq < 0 && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) i++;
        continue;
      }
      const secret = SETTINGS.find((x) => x.flag === flag && "secret" in x);
      if (secret) {
        // Never echo the value: it is a credential, and the command line is visible to every user (ps).
        if (eq < 0 && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) i++;
        this.problems.push(
          `${flag}: secrets are not accepted on the command line (every user can read it with ps); put it in a file and set ${secret.env}_FILE, or set ${secret.env}`,
        );
        continue;
      }
      // A bare boolean switch (--insecure) means true.
      if (BARE_SWITCHES.has(flag) && eq < 0 && (argv[i + 1] === undefined || argv[i + 1]!.startsWith("--"))) {
        this.flags.set(flag, "true");
        continue;
      }
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) this.problems.push(`${flag} needs a value`);
      else this.flags.set(flag, value);
    }
  }

  private setting(env: string): Setting {
    const found = SETTINGS.find((s) => s.env === env);
    if (!found) throw new Error(`undeclared setting ${env}`);
    return found;
  }

  /** The raw text of a setting, or undefined when unset and without default. */
  text(env: string): string | undefined {
    const s: Setting = this.setting(env);
    const raw = this.flags.get(s.flag) ?? nonEmpty(this.env[env]) ?? (s.secret ? this.fromFile(env) : undefined) ?? s.default;
    return raw?.startsWith("~/") ? join(homedir(), raw.slice(2)) : raw;
  }

  private readonly files = new Map<string, string | undefined>();

  /**
   * A secret from the file named by <env>_FILE, without its trailing newline (secrets made with
   * `kubectl create secret --from-file` or an editor end with one); an empty file is unset. Read once.
   */
  private fromFile(env: string): string | undefined {
    const path = nonEmpty(this.env[`${env}_FILE`]);
    if (path === undefined) return undefined;
    if (!this.files.has(env)) {
      try {
        this.files.set(env, nonEmpty(readFileSync(path, "utf8").replace(/\r?\n$/, "")));
      } catch (err) {
        this.problems.push(
          `${env}_FILE=${JSON.stringify(path)}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        );
        this.files.set(env, undefined);
      }
    }
    return this.files.get(env);
  }

  /** Whether a setting was given (flag, non-empty variable or secret file) rather than left to its default. */
  given(env: string): boolean {
    const s: Setting = this.setting(env);
    return this.flags.has(s.flag) || nonEmpty(this.env[env]) !== undefined || (s.secret === true && this.fromFile(env) !== undefined);
  }

  /** A setting's value; one with no default that was not given is reported as a problem (and read as ""). */
  required(env: string): string {
    const value = this.text(env);
    if (value !== undefined) return value;
    this.problems.push(`${env} (${this.setting(env).flag}) is required`);
    return "";
  }

  /** An address that an explicitly empty value (variable or flag) turns off; undefined: off. */
  optionalAddress(env: string): string | undefined {
    const s = this.setting(env);
    if (this.flags.get(s.flag) === "" || (!this.flags.has(s.flag) && this.env[env] === "")) return undefined;
    return this.address(env);
  }

  address(env: string, optional = false): string | undefined {
    const value = this.text(env);
    if (value === undefined) return undefined;
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(value) || Number(value.split(":").pop()) > 65535) {
      this.problems.push(`${env}=${JSON.stringify(value)}: expected host:port, e.g. 127.0.0.1:50051`);
    }
    return optional && value === "" ? undefined : value;
  }

  integer(env: string, min: number, max: number): number {
    const value = this.required(env);
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      this.problems.push(`${env}=${JSON.stringify(value)}: expected a whole number from ${min} to ${max}`);
    }
    return n;
  }

  url(env: string): string {
    const value = this.required(env);
    try {
      const u = new URL(value);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("scheme");
    } catch {
      this.problems.push(`${env}=${JSON.stringify(value)}: expected an http:// or https:// URL`);
    }
    return value.replace(/\/+$/, "");
  }

  boolean(env: string): boolean {
    const value = this.required(env);
    if (value !== "true" && value !== "false") this.problems.push(`${env}=${JSON.stringify(value)}: expected true or false`);
    return value === "true";
  }

  oneOf(env: string, allowed: readonly string[]): string {
    const value = this.required(env);
    if (!allowed.includes(value)) this.problems.push(`${env}=${JSON.stringify(value)}: expected one of ${allowed.join(", ")}`);
    return value;
  }

  /** A comma-separated list of names from `allowed`, each once. */
  list(env: string, allowed: readonly string[]): string[] {
    const items = this.required(env)
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean);
    const bad = items.filter((x) => !allowed.includes(x));
    if (items.length === 0 || bad.length > 0 || new Set(items).size !== items.length) {
      this.problems.push(
        `${env}=${JSON.stringify(this.required(env))}: expected a comma-separated list of ${allowed.join(", ")}, each once`,
      );
    }
    return items;
  }

  /** A postgres:// or postgresql:// URL, or undefined when unset. */
  postgresUrl(env: string): string | undefined {
    const value = this.text(env);
    if (value === undefined) return undefined;
    let ok = false;
    try {
      const u = new URL(value);
      ok = (u.protocol === "postgres:" || u.protocol === "postgresql:") && (u.hostname !== "" || u.searchParams.has("host"));
    } catch {
      ok = false;
    }
    // The value may hold a password: the message names the variable, never the value.
    if (!ok) this.problems.push(`${env}: expected a postgres://user:password@host:5432/database URL`);
    return value;
  }

  location(env: string): string | undefined {
    const value = this.text(env);
    if (value === undefined) return undefined;
    if (value !== "auto" && !parseLatLon(value) && !ZONE_PATTERN.test(value)) {
      this.problems.push(
        `${env}=${JSON.stringify(value)}: expected "lat,lon" (e.g. "42.28,-83.74"), a zone (e.g. "DE", "US-MIDW-MISO", "CAISO_NORTH") or "auto"`,
      );
    }
    return value;
  }

  done<T>(config: T): T {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
    return config;
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

/**
 * A grid zone as providers name it: ElectricityMaps zones ("DE", "US-MIDW-MISO", "RU-1") or WattTime
 * regions ("CAISO_NORTH", "PJM_DC").
 */
export const ZONE_PATTERN = /^(?:[A-Z]{2}(?:-[A-Z0-9]+)*|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)$/;

/** "lat,lon" with both in range, or undefined. */
export function parseLatLon(text: string): { lat: number; lon: number } | undefined {
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$/.exec(text);
  if (!m) return undefined;
  const lat = Number(m[1]);
  const lon = Number(m[2]);
  return Math.abs(lat) <= 90 && Math.abs(lon) <= 180 ? { lat, lon } : undefined;
}

/**
 * The idle sampling period: at least the sampling period. Left unset, it is the default or the sampling
 * period if that is longer (a long sampling period alone is no error); given below it, it is an error.
 */
function idleSamplingPeriodMs(r: Reader, samplingPeriodMs: number | undefined): number {
  const env = "CARBONMON_IDLE_SAMPLING_PERIOD_MS";
  if (!r.given(env)) return Math.max(Number(r.required(env)), samplingPeriodMs ?? 0);
  const problems = r.problems.length;
  const idleMs = r.integer(env, 10, 60_000);
  if (r.problems.length === problems && samplingPeriodMs !== undefined && idleMs < samplingPeriodMs) {
    r.problems.push(
      `${env}=${JSON.stringify(r.required(env))}: must be at least CARBONMON_SAMPLING_PERIOD_MS (${samplingPeriodMs} ms); ` +
        "set it equal to sample at full rate always",
    );
  }
  return idleMs;
}

export function loadAgentConfig(source: ConfigSource = {}): AgentConfig {
  const env = source.env ?? process.env;
  const r = new Reader("agent", env, source.argv ?? []);
  const problems = r.problems.length;
  const samplingPeriodMs = r.integer("CARBONMON_SAMPLING_PERIOD_MS", 10, 10_000);
  const samplingOk = r.problems.length === problems;
  return r.done({
    listen: r.address("CARBONMON_AGENT_LISTEN")!,
    security: securitySettings(r),
    intensitySecurity: {
      caFile: r.text("CARBONMON_INTENSITY_TLS_CA_FILE"),
      ...pair(r, "CARBONMON_INTENSITY_TLS_CERT_FILE", "CARBONMON_INTENSITY_TLS_KEY_FILE"),
      tokenFile: r.text("CARBONMON_INTENSITY_TOKEN_FILE"),
    },
    maxOpenWindowsPerPrincipal: r.integer("CARBONMON_MAX_OPEN_WINDOWS_PER_PRINCIPAL", 1, 10_000_000),
    maxStreamsPerPrincipal: r.integer("CARBONMON_MAX_STREAMS_PER_PRINCIPAL", 1, 100_000),
    intensityAddr: r.address("CARBONMON_INTENSITY_ADDR", true),
    dataDir: r.required("CARBONMON_DATA_DIR"),
    nvmlLibrary: r.required("CARBONMON_NVML_LIBRARY"),
    powercapRoot: r.required("CARBONMON_POWERCAP_ROOT"),
    samplingPeriodMs,
    idleSamplingPeriodMs: idleSamplingPeriodMs(r, samplingOk ? samplingPeriodMs : undefined),
    idleAfterMs: r.integer("CARBONMON_IDLE_AFTER_MS", 0, 3_600_000),
    firstReadingTimeoutMs: r.integer("CARBONMON_FIRST_READING_TIMEOUT_MS", 0, 600_000),
    hostname: r.text("CARBONMON_HOSTNAME") || hostname(),
    simulatedGpu: r.boolean("CARBONMON_SIMULATED_GPU"),
    journalMode: r.oneOf("CARBONMON_JOURNAL_MODE", ["write", "mapped"]) as "write" | "mapped",
    raplMaxPowerW: r.integer("CARBONMON_RAPL_MAX_POWER_W", 1, 100_000),
    maxOpenWindows: r.integer("CARBONMON_MAX_OPEN_WINDOWS", 1, 10_000_000),
    retentionDays: r.integer("CARBONMON_RETENTION_DAYS", 1, 3650),
    location: r.location("CARBONMON_LOCATION"),
    emissionFactor: r.oneOf("CARBONMON_EMISSION_FACTOR", ["lifecycle", "direct"]) as "lifecycle" | "direct",
    allowEstimated: r.boolean("CARBONMON_ALLOW_ESTIMATED"),
    carbonTimeoutMs: r.integer("CARBONMON_CARBON_TIMEOUT_MS", 10, 600_000),
    carbonRetryMs: r.integer("CARBONMON_CARBON_RETRY_MS", 10, 86_400_000),
    ipinfoUrl: r.url("CARBONMON_IPINFO_URL"),
    logLevel: r.oneOf("CARBONMON_LOG_LEVEL", LOG_LEVELS),
    metricsListen: r.optionalAddress("CARBONMON_AGENT_METRICS_LISTEN"),
    allowNoDevices: r.boolean("CARBONMON_ALLOW_NO_DEVICES"),
    cudaVisibleDevices: env.CUDA_VISIBLE_DEVICES,
  });
}

export function loadIntensityConfig(source: ConfigSource = {}): IntensityConfig {
  const r = new Reader("intensity", source.env ?? process.env, source.argv ?? []);
  const config = {
    listen: r.address("CARBONMON_INTENSITY_LISTEN")!,
    security: securitySettings(r),
    dataDir: r.required("CARBONMON_DATA_DIR"),
    databaseUrl: r.postgresUrl("CARBONMON_DATABASE_URL"),
    location: r.location("CARBONMON_LOCATION"),
    electricitymapsApiToken: r.text("ELECTRICITYMAPS_API_TOKEN"),
    electricitymapsUrl: r.url("CARBONMON_ELECTRICITYMAPS_URL"),
    electricitymapsGranularity: r.oneOf("CARBONMON_ELECTRICITYMAPS_GRANULARITY", ["hourly", "15_minutes", "5_minutes"]) as
      | "hourly"
      | "15_minutes"
      | "5_minutes",
    watttimeUsername: r.text("WATTTIME_USERNAME"),
    watttimePassword: r.text("WATTTIME_PASSWORD"),
    watttimeUrl: r.url("CARBONMON_WATTTIME_URL"),
    ukgridUrl: r.url("CARBONMON_UKGRID_URL"),
    ipinfoUrl: r.url("CARBONMON_IPINFO_URL"),
    logLevel: r.oneOf("CARBONMON_LOG_LEVEL", LOG_LEVELS),
    providers: r.list("CARBONMON_PROVIDERS", PROVIDER_NAMES),
    intensityConstants: r.text("CARBONMON_INTENSITY_CONSTANTS"),
    cacheMaxBytes: r.integer("CARBONMON_INTENSITY_CACHE_MAX_BYTES", 0, 2 ** 40),
    metricsListen: r.optionalAddress("CARBONMON_INTENSITY_METRICS_LISTEN"),
  };
  if ((config.watttimeUsername === undefined) !== (config.watttimePassword === undefined)) {
    r.problems.push("WATTTIME_USERNAME and WATTTIME_PASSWORD: set both or neither");
  }
  return r.done(config);
}

/** A certificate and its key: both or neither. */
function pair(r: Reader, certEnv: string, keyEnv: string): { certFile: string | undefined; keyFile: string | undefined } {
  const certFile = r.text(certEnv);
  const keyFile = r.text(keyEnv);
  if ((certFile === undefined) !== (keyFile === undefined)) r.problems.push(`${certEnv} and ${keyEnv}: set both or neither`);
  return { certFile, keyFile };
}

function securitySettings(r: Reader): SecurityConfig {
  const { certFile, keyFile } = pair(r, "CARBONMON_TLS_CERT_FILE", "CARBONMON_TLS_KEY_FILE");
  const config: SecurityConfig = {
    tlsCertFile: certFile,
    tlsKeyFile: keyFile,
    tlsClientCaFile: r.text("CARBONMON_TLS_CLIENT_CA_FILE"),
    authTokensFile: r.text("CARBONMON_AUTH_TOKENS_FILE"),
    jwksFile: r.text("CARBONMON_AUTH_JWKS_FILE"),
    jwtIssuer: r.text("CARBONMON_AUTH_JWT_ISSUER"),
    jwtAudience: r.text("CARBONMON_AUTH_JWT_AUDIENCE"),
    insecure: r.boolean("CARBONMON_INSECURE"),
  };
  if (config.tlsClientCaFile !== undefined && certFile === undefined) {
    r.problems.push("CARBONMON_TLS_CLIENT_CA_FILE: mutual TLS needs TLS: set CARBONMON_TLS_CERT_FILE and CARBONMON_TLS_KEY_FILE too");
  }
  const jwt = [config.jwksFile, config.jwtIssuer, config.jwtAudience];
  if (jwt.some((x) => x !== undefined) && jwt.some((x) => x === undefined)) {
    r.problems.push("CARBONMON_AUTH_JWKS_FILE, CARBONMON_AUTH_JWT_ISSUER and CARBONMON_AUTH_JWT_AUDIENCE: set all three or none");
  }
  return config;
}

/** The CLI's client settings: its flags (already parsed, by flag name) win over the environment. */
export function loadClientSecurityConfig(
  flags: Partial<Record<string, string>>,
  env: NodeJS.ProcessEnv = process.env,
): ClientSecurityConfig {
  const argv = Object.entries(flags).flatMap(([flag, value]) => (value === undefined ? [] : [flag, value]));
  const r = new Reader("client", env, argv);
  const config = {
    caFile: r.text("CARBONMON_CLIENT_TLS_CA_FILE"),
    ...pair(r, "CARBONMON_CLIENT_TLS_CERT_FILE", "CARBONMON_CLIENT_TLS_KEY_FILE"),
    tokenFile: r.text("CARBONMON_TOKEN_FILE"),
  };
  return r.done(config);
}

/** `--help` text for one service: every flag, its variable and default. */
export function helpText(service: Service): string {
  const rows = SETTINGS.filter((s) => (s.services as readonly Service[]).includes(service));
  const lines = rows.map((s) => {
    const def = "default" in s ? ` (default ${s.default})` : "";
    if ("secret" in s) return `  ${"(file only)".padEnd(30)} ${s.env}_FILE or ${s.env}\n  ${"".padEnd(30)} ${s.description}`;
    return `  ${s.flag.padEnd(30)} ${s.env}${def}\n  ${"".padEnd(30)} ${s.description}`;
  });
  return `Usage: carbonmon ${service} [options]\n\nEvery option can also be set through its environment variable; a flag wins.\n\n${lines.join("\n")}\n`;
}
