/**
 * Scopes and which one each RPC needs. The table is closed: a method not listed here is refused (a new
 * RPC must be given a scope before anyone can call it), except health checking, which is left open so that
 * load balancers and orchestrators can probe without a token.
 */
export const SCOPES = ["windows:read", "windows:write", "windows:admin", "intensity:read", "reflection"] as const;
export type Scope = (typeof SCOPES)[number];

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** What a method needs: any one of `anyOf`, or nothing ("open"). */
export type Requirement = { open: true } | { open: false; anyOf: readonly Scope[] };

const OPEN: Requirement = { open: true };
const need = (...anyOf: Scope[]): Requirement => ({ open: false, anyOf });

/** windows:write may read its own windows; windows:admin may do anything with any window. */
const READ_WINDOWS = need("windows:read", "windows:write", "windows:admin");
const WRITE_WINDOWS = need("windows:write", "windows:admin");

const AGENT: Record<string, Requirement> = {
  GetHost: need("windows:read", "windows:admin"),
  WatchPower: need("windows:read", "windows:admin"),
  GetWindow: READ_WINDOWS,
  ListWindows: READ_WINDOWS,
  BeginWindow: WRITE_WINDOWS,
  EndWindow: WRITE_WINDOWS,
  CancelWindow: WRITE_WINDOWS,
};

const SERVICES: Record<string, (method: string) => Requirement | undefined> = {
  "carbonmon.agent.v1.EnergyMonitor": (m) => AGENT[m],
  "carbonmon.intensity.v1.CarbonIntensity": () => need("intensity:read"),
  "grpc.reflection.v1.ServerReflection": () => need("reflection"),
  "grpc.reflection.v1alpha.ServerReflection": () => need("reflection"),
  "grpc.health.v1.Health": () => OPEN,
};

/** The requirement of a method path ("/package.Service/Method"); undefined: unknown, refused. */
export function requirementOf(path: string): Requirement | undefined {
  const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
  return m ? SERVICES[m[1]!]?.(m[2]!) : undefined;
}
