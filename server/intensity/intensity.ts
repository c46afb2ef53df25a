/**
 * The intensity service's domain: locations to zones, the fallback chain of providers per zone, caching
 * with single flight, the store that keeps every point, gap filling and emissions. Every answer says which
 * provider gave it and why earlier ones did not (attempts).
 */
import type { Clock } from "../shared/clock.js";
import { AppError, Code } from "../shared/errors.js";
import type { Logger } from "../shared/log.js";
import type { TtlCache } from "./cache.js";
import type { ProviderGuard } from "./guard.js";
import type { Attempt, LocationQuery } from "./codec.js";
import { isProvisional, pointProblem, type EmissionFactor, type Point, type Signal } from "./core/point.js";
import { clip, fillGaps, gaps, normalize } from "./core/series.js";
import type { Coordinates, Provider, Query } from "./providers/provider.js";
import type { IntensityStore } from "./store/store.js";
import { DAY_MS, MINUTE_MS } from "../shared/units.js";

/** A zone's series for the coming hours, from one provider (see Intensity.outlook). */
export interface Outlook {
  zone: string;
  /** Normalized: sorted, no overlaps; holes are gaps. */
  points: Point[];
  /** false: the provider has no forecast; its values (a constant, an annual average) are flat. */
  forecast: boolean;
  provider: string;
  signal: Signal;
  attempts: Attempt[];
  fetchedAtMs: number;
  /** When the provider issued the series (its latest updatedAt / generated_at), else when it was fetched. */
  issuedAtMs: number;
}

/** Failures that say a provider will not give this zone a forecast (not that it is down for a while). */
const REFUSALS = new Set<string>([
  Code.FailedPrecondition,
  Code.NotFound,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.InvalidArgument,
]);

/**
 * An answer shaped by one caller's deadline or cancellation (a provider cut short for it) is that caller's
 * only: kept, a tight deadline would make the next callers get the fallback's value until it expires.
 */
const CALLER_CUT = new Set<string>([Code.DeadlineExceeded, Code.Cancelled]);
const cutShort = (attempts: readonly Attempt[]): boolean => attempts.some((a) => CALLER_CUT.has(a.code));

function noOutlook(zone: string, why: string): AppError {
  return new AppError(Code.FailedPrecondition, `no configured provider has a forecast for zone ${zone} (${why})`, {
    hint: "forecasts come from ElectricityMaps (ELECTRICITYMAPS_API_TOKEN, a plan with forecasts), WattTime (its regions) and the UK grid (GB); for a flat series, add the zone to CARBONMON_INTENSITY_CONSTANTS or keep offline in CARBONMON_PROVIDERS",
  });
}

export interface IntensityRequest {
  location: LocationQuery;
  emissionFactor: EmissionFactor;
  allowEstimated: boolean;
  /** Ask this provider only; empty: the chain. */
  provider: string;
}

export interface Resolved {
  zone: string;
  coordinates?: Coordinates;
  method: "zone" | "coordinates" | "ip_lookup";
  detail: string;
}

/** One provider of a zone's chain, or why it is skipped. */
interface Link {
  provider: Provider;
  skip?: Attempt;
}

export interface IntensityDeps {
  providers: Provider[];
  store: IntensityStore;
  cache: TtlCache;
  clock: Clock;
  log: Logger;
  /** Coordinates of this machine from the IP-location endpoint (CARBONMON_IPINFO_URL). */
  locateByIp: () => Promise<{ coordinates: Coordinates; detail: string }>;
  /** Budget and circuit breaker per provider name. */
  guards: ReadonlyMap<string, ProviderGuard>;
  /** Told of every provider call (metrics): outcome "ok", "circuit_open", "budget_exhausted" or the error code in lower case. */
  onProviderCall?: (provider: string, outcome: string, seconds: number) => void;
}

export class Intensity {
  /** Zones asked about, so that their history is recorded while upstream still shows it. */
  private readonly inUse = new Map<string, IntensityRequest>();
  /** The latest value answered per zone and emission factor (metrics: intensity of the zones in use). */
  private readonly latest = new Map<string, Point>();

  constructor(private readonly deps: IntensityDeps) {}

  private remember(zone: string, req: IntensityRequest): void {
    const r: IntensityRequest = { ...req, location: { kind: "zone", zone } };
    this.inUse.set(`${zone}|${req.emissionFactor}|${req.provider}`, r);
  }

  /**
   * Fetches the last 24 hours of every zone in use into the store. The free ElectricityMaps tier only
   * shows 24 h; run at least daily, this keeps every hour for questions about last week.
   */
  async record(): Promise<number> {
    const now = this.deps.clock.nowMs();
    let saved = 0;
    for (const req of this.inUse.values()) {
      try {
        saved += (await this.history(req, now - DAY_MS, now, "error")).points.length;
      } catch (err) {
        this.deps.log.warn({ err: AppError.from(err).message, zone: (req.location as { zone: string }).zone }, "recording history failed");
      }
    }
    return saved;
  }

  /** The latest value answered for each zone and emission factor in use. */
  latestPoints(): IterableIterator<Point> {
    return this.latest.values();
  }

  private noteLatest(p: Point | undefined): void {
    if (!p) return;
    const key = `${p.zone}|${p.emissionFactor}`;
    const known = this.latest.get(key);
    if (!known || known.validFromMs <= p.validFromMs) this.latest.set(key, p);
  }

  get providers(): readonly Provider[] {
    return this.deps.providers;
  }

  async resolve(location: LocationQuery): Promise<Resolved> {
    if (location.kind === "zone") return { zone: location.zone, method: "zone", detail: "zone given" };
    const ip = location.kind === "auto" ? await this.deps.locateByIp() : undefined;
    const coordinates = ip?.coordinates ?? (location as { lat: number; lon: number });
    const resolver = this.deps.providers.find((p) => p.resolve && p.unconfiguredReason === undefined);
    if (!resolver?.resolve) {
      throw new AppError(Code.FailedPrecondition, "coordinates need a provider that maps them to a grid zone (ElectricityMaps)", {
        hint: "set ELECTRICITYMAPS_API_TOKEN, or give the zone instead",
      });
    }
    const key = `resolve|${coordinates.lat.toFixed(3)},${coordinates.lon.toFixed(3)}`;
    const { value } = await this.deps.cache.get(
      key,
      () => this.guarded(resolver, () => resolver.resolve!(coordinates)),
      () => DAY_MS,
    );
    return {
      zone: value.zone,
      coordinates: { lat: coordinates.lat, lon: coordinates.lon },
      method: ip ? "ip_lookup" : "coordinates",
      detail: ip?.detail ?? `${resolver.name} mapped the coordinates`,
    };
  }

  /** Providers to ask for a zone, in chain order. */
  candidates(zone: string, only: string): Provider[] {
    return this.chain(zone, only).flatMap((l) => (l.skip ? [] : [l.provider]));
  }

  /** The chain for a zone, in order: each provider, or why it will not be asked (reported as an attempt). */
  private chain(zone: string, only: string): Link[] {
    const all = this.deps.providers.filter((p) => !only || p.name === only);
    if (only && all.length === 0)
      throw new AppError(Code.InvalidArgument, `no provider named ${JSON.stringify(only)}`, {
        hint: `configured: ${this.deps.providers.map((p) => p.name).join(", ")}`,
      });
    const links = all.map((provider): Link => {
      const skip = provider.unconfiguredReason ?? (provider.covers(zone) ? undefined : `no data for zone ${zone}`);
      return skip ? { provider, skip: { provider: provider.name, code: Code.FailedPrecondition, message: skip } } : { provider };
    });
    if (links.every((l) => l.skip)) {
      throw new AppError(
        Code.NotFound,
        `no configured provider covers zone ${zone} (${links.map((l) => `${l.provider.name}: ${l.skip!.message}`).join("; ")})`,
        {
          hint: "configure a provider for it, or a constant (CARBONMON_INTENSITY_CONSTANTS)",
        },
      );
    }
    return links;
  }

  /** The first provider's answer, with what happened to each provider before it. */
  private async firstAnswer<T>(
    chain: Link[],
    ask: (p: Provider) => Promise<T>,
    accept: (v: T) => boolean = () => true,
  ): Promise<{ value: T; provider: Provider; attempts: Attempt[] }> {
    const attempts: Attempt[] = [];
    for (const { provider, skip } of chain) {
      if (skip) {
        attempts.push(skip);
        continue;
      }
      try {
        const value = await this.guarded(provider, () => ask(provider));
        if (!accept(value)) {
          attempts.push({ provider: provider.name, code: Code.NotFound, message: "no values for the period" });
          continue;
        }
        attempts.push({ provider: provider.name, code: "OK", message: "" });
        return { value, provider, attempts };
      } catch (err) {
        const e = AppError.from(err);
        attempts.push({ provider: provider.name, code: e.code, message: e.message });
      }
    }
    const tried = attempts.filter((a) => a.code !== Code.FailedPrecondition);
    const first = tried.find((a) => a.code !== Code.NotFound) ?? tried[0] ?? attempts[0]!;
    throw new AppError(first.code as Code, `no provider could answer: ${attempts.map((a) => `${a.provider}: ${a.message}`).join("; ")}`);
  }

  /** Stored points that pass the check every upstream value passes (a store written before it may hold others). */
  private sound(provider: string, zone: string, points: Point[]): Point[] {
    const ok = points.filter((p) => pointProblem(p, zone) === undefined);
    if (ok.length < points.length)
      this.deps.log.warn(
        {
          provider,
          zone,
          setAside: points.length - ok.length,
          problem: pointProblem(points.find((p) => pointProblem(p, zone) !== undefined)!, zone),
        },
        "stored points failed validation; set aside, not served",
      );
    return ok;
  }

  private guarded<T>(provider: Provider, call: () => Promise<T>): Promise<T> {
    const guard = this.deps.guards.get(provider.name);
    const observe = this.deps.onProviderCall;
    if (!observe) return guard ? guard.run(call) : call();
    // What the guard will do, told apart from upstream failures (it refuses with UNAVAILABLE / RESOURCE_EXHAUSTED).
    const refused = guard?.health() === "circuit_open" ? "circuit_open" : guard && guard.remaining() < 1 ? "budget_exhausted" : undefined;
    const t0 = performance.now();
    const done = (outcome: string) => observe(provider.name, refused ?? outcome, (performance.now() - t0) / 1000);
    return (guard ? guard.run(call) : call()).then(
      (value) => (done("ok"), value),
      (err: unknown) => {
        done(AppError.from(err).code.toLowerCase());
        throw err;
      },
    );
  }

  guard(name: string): ProviderGuard | undefined {
    return this.deps.guards.get(name);
  }

  private query(zone: string, req: IntensityRequest): Query {
    return { zone, emissionFactor: req.emissionFactor, allowEstimated: req.allowEstimated };
  }

  private key(op: string, zone: string, req: IntensityRequest, extra = ""): string {
    return `${op}|${req.provider}|${zone}|${req.emissionFactor}|${req.allowEstimated}|${extra}`;
  }

  async current(req: IntensityRequest): Promise<{ point: Point; attempts: Attempt[]; cached: boolean }> {
    const { zone } = await this.resolve(req.location);
    this.remember(zone, req);
    const load = async () => {
      const r = await this.firstAnswer(this.chain(zone, req.provider), (p) => p.current(this.query(zone, req)));
      await this.deps.store.save([r.value]);
      // Plain data only: replicas share cached answers as JSON.
      return { value: r.value, attempts: r.attempts };
    };
    const ttl = (r: { value: Point; attempts: Attempt[] }) =>
      cutShort(r.attempts) ? 0 : Math.max(30_000, Math.min(5 * MINUTE_MS, r.value.validToMs - this.deps.clock.nowMs()));
    const { value, cached } = await this.deps.cache.get(this.key("current", zone, req), load, ttl);
    this.noteLatest(value.value);
    return { point: value.value, attempts: value.attempts, cached };
  }

  /** Values over [from, to): the first provider that answers, completed from the store, gaps filled by later providers. */
  async history(
    req: IntensityRequest,
    fromMs: number,
    toMs: number,
    gapPolicy: "error" | "fill",
  ): Promise<{ zone: string; points: Point[]; filled: Point[]; attempts: Attempt[]; gaps: Array<{ startMs: number; endMs: number }> }> {
    const { zone } = await this.resolve(req.location);
    this.remember(zone, req);
    const load = () => this.loadHistory(zone, req, fromMs, toMs, gapPolicy);
    // An answer with gaps is not kept (the next question may find upstream or the store complete), and one
    // that a provider failed is kept a minute only: cached, and shared by replicas, they would otherwise
    // answer "no intensity" for an hour after a cold start under a spent budget.
    const ttl = (r: { points: Point[]; gaps: unknown[]; attempts: Attempt[] }) => {
      if (r.gaps.length > 0 || cutShort(r.attempts)) return 0;
      if (
        r.attempts.some((a) => a.code !== "OK" && a.code !== Code.FailedPrecondition) ||
        r.points.some((p) => isProvisional(p, this.deps.clock.nowMs()))
      )
        return MINUTE_MS;
      return 60 * MINUTE_MS;
    };
    const { value } = await this.deps.cache.get(this.key("history", zone, req, `${fromMs}-${toMs}-${gapPolicy}`), load, ttl);
    this.noteLatest(value.points.at(-1));
    return value;
  }

  private async loadHistory(zone: string, req: IntensityRequest, fromMs: number, toMs: number, gapPolicy: "error" | "fill") {
    const attempts: Attempt[] = [];
    let points: Point[] = [];
    const filled: Point[] = [];
    let asked = 0;
    for (const { provider, skip } of this.chain(zone, req.provider)) {
      if (skip) {
        attempts.push(skip);
        continue;
      }
      const stored = this.sound(
        provider.name,
        zone,
        await this.deps.store.range(provider.name, zone, provider.fixedEmissionFactor ?? req.emissionFactor, fromMs, toMs),
      );
      let fetched: Point[] = [];
      try {
        fetched = await this.guarded(provider, () => provider.range(this.query(zone, req), fromMs, toMs));
        await this.deps.store.save(fetched);
        attempts.push({ provider: provider.name, code: "OK", message: "" });
      } catch (err) {
        const e = AppError.from(err);
        attempts.push({
          provider: provider.name,
          code: e.code,
          message: stored.length > 0 ? `${e.message} (answered from the store)` : e.message,
        });
      }
      const mine = normalize([...stored, ...fetched]);
      if (asked++ === 0) points = mine;
      else {
        const f = fillGaps(points, mine, fromMs, toMs);
        points = f.points;
        filled.push(...f.filled);
      }
      if (gaps(points, fromMs, toMs).length === 0 || gapPolicy === "error") break;
    }
    return { zone, points, filled, attempts, gaps: gaps(points, fromMs, toMs) };
  }

  async forecast(req: IntensityRequest, horizonMs: number): Promise<{ zone: string; points: Point[]; attempts: Attempt[] }> {
    const { zone } = await this.resolve(req.location);
    const chain = this.chain(zone, req.provider).filter((l) => l.provider.forecast);
    if (chain.every((l) => l.skip))
      throw new AppError(Code.NotFound, `no configured provider forecasts zone ${zone}`, {
        hint: "forecasts come from ElectricityMaps (paid plans) and the UK grid (GB)",
      });
    const load = async () => {
      const r = await this.firstAnswer(
        chain,
        (p) => p.forecast!(this.query(zone, req), horizonMs),
        (v) => v.length > 0,
      );
      return { value: r.value, attempts: r.attempts };
    };
    const { value } = await this.deps.cache.get(this.key("forecast", zone, req, String(horizonMs)), load, (r) =>
      cutShort(r.attempts) ? 0 : 10 * MINUTE_MS,
    );
    return { zone, points: value.value, attempts: value.attempts };
  }

  /**
   * A zone's next horizonMs for scheduling (GetBestWindow): the first forecast along the whole chain; a
   * provider without forecasts (static, offline) answers its values over the horizon instead, a flat
   * series marked `forecast: false`. Cached like forecasts; a chain with no provider for the zone is
   * FAILED_PRECONDITION, as is one whose every provider refused (no forecast in the plan, no data).
   */
  async outlook(req: IntensityRequest, horizonMs: number): Promise<Outlook> {
    const { zone } = await this.resolve(req.location);
    const load = async (): Promise<Outlook> => {
      let chain: Link[];
      try {
        chain = this.chain(zone, req.provider);
      } catch (err) {
        const e = AppError.from(err);
        throw e.code === Code.InvalidArgument ? e : noOutlook(zone, e.message);
      }
      const nowMs = this.deps.clock.nowMs();
      const endMs = nowMs + horizonMs;
      const ask = async (p: Provider) =>
        p.forecast
          ? { points: normalize(await p.forecast(this.query(zone, req), horizonMs)), forecast: true }
          : {
              points: normalize((await p.range(this.query(zone, req), nowMs, endMs)).flatMap((x) => clip(x, x.validFromMs, endMs) ?? [])),
              forecast: false,
            };
      try {
        const r = await this.firstAnswer(chain, ask, (v) => v.points.length > 0);
        const updatedMs = r.value.points.reduce((m, p) => Math.max(m, p.sourceUpdatedAtMs ?? -Infinity), -Infinity);
        return {
          zone,
          ...r.value,
          provider: r.provider.name,
          signal: r.provider.signal,
          attempts: r.attempts,
          fetchedAtMs: nowMs,
          issuedAtMs: Number.isFinite(updatedMs) ? updatedMs : nowMs,
        };
      } catch (err) {
        const e = AppError.from(err);
        throw REFUSALS.has(e.code) ? noOutlook(zone, e.message) : e;
      }
    };
    const { value } = await this.deps.cache.get(this.key("outlook", zone, req, String(horizonMs)), load, (r) =>
      cutShort(r.attempts) ? 0 : 10 * MINUTE_MS,
    );
    return value;
  }

  /** The series that prices segments spanning `span` (segmentsSpan's, within its limit): from the hour it starts. */
  emissionsHistory(req: IntensityRequest, span: { startMs: number; endMs: number }, gapPolicy: "error" | "fill") {
    return this.history(req, Math.floor(span.startMs / 3_600_000) * 3_600_000, span.endMs, gapPolicy);
  }
}
