/**
 * Annual average intensities shipped with npm @tgwf/co2 (Green Web Foundation): no network, no key, so
 * the offline default of every fallback chain. Values are annual averages, never live: one point per
 * calendar year (UTC), source "annual_average".
 *
 * Data credits (also due in the README):
 * - Electricity Maps yearly carbon intensity per zone, 2021-2025 (sub-national zones too), © Electricity
 *   Maps, Open Database License (ODbL) 1.0, republished by @tgwf/co2 (`@tgwf/co2/data`, electricityMaps).
 *   Fetched by co2.js from the v3 API without emissionFactorType, whose default is lifecycle.
 * - Ember yearly electricity data, country averages keyed by ISO 3166 alpha-3, © Ember, CC BY 4.0
 *   (co2.js's README says CC BY-SA 4.0), via @tgwf/co2 (averageIntensity). Ember counts lifecycle
 *   emissions. Each country holds its latest year with data, but the package does not ship which year.
 * Both are lifecycle: a query for direct emissions still gets the lifecycle value, labelled as such.
 *
 * Lookup: the exact Electricity Maps zone ("US-MIDW-MISO"), else the zone's country ("US-XXX" → "US")
 * in Electricity Maps, else that country in Ember. A country stand-in is marked estimated.
 */
import { createRequire } from "node:module";
import type { Clock } from "../../shared/clock.js";
import { systemClock } from "../../shared/clock.js";
import { AppError, Code } from "../../shared/errors.js";
import type { Point } from "../core/point.js";
import type { Provider, Query } from "./provider.js";

const NAME = "offline";
const MAX_YEARS = 1000;
/** ISO 3166 alpha-2 → alpha-3 for the countries in Ember's data (XK: Kosovo, XKX as Ember writes it). */
const ISO3_BY_ISO2 = new Map(
  (
    "AEARE AFAFG AGATG ALALB AMARM AOAGO ARARG ASASM ATAUT AUAUS AWABW AZAZE BABIH BBBRB BDBGD BEBEL BFBFA BGBGR BHBHR BIBDI BJBEN BNBRN BOBOL " +
    "BRBRA BSBHS BTBTN BWBWA BYBLR BZBLZ CACAN CDCOD CFCAF CGCOG CHCHE CICIV CKCOK CLCHL CMCMR CNCHN COCOL CRCRI CUCUB CVCPV CYCYP CZCZE DEDEU " +
    "DJDJI DKDNK DMDMA DODOM DZDZA ECECU EEEST EGEGY ERERI ESESP ETETH FIFIN FJFJI FKFLK FOFRO FRFRA GAGAB GBGBR GDGRD GEGEO GFGUF GHGHA GLGRL " +
    "GMGMB GNGIN GPGLP GQGNQ GRGRC GTGTM GUGUM GWGNB GYGUY HKHKG HNHND HRHRV HTHTI HUHUN IDIDN IEIRL ILISR ININD IQIRQ IRIRN ISISL ITITA JMJAM " +
    "JOJOR JPJPN KEKEN KGKGZ KHKHM KIKIR KMCOM KNKNA KPPRK KRKOR KWKWT KYCYM KZKAZ LALAO LBLBN LCLCA LKLKA LRLBR LSLSO LTLTU LULUX LVLVA LYLBY " +
    "MAMAR MDMDA MEMNE MGMDG MKMKD MLMLI MMMMR MNMNG MOMAC MQMTQ MRMRT MSMSR MTMLT MUMUS MVMDV MWMWI MXMEX MYMYS MZMOZ NANAM NCNCL NENER NGNGA " +
    "NINIC NLNLD NONOR NPNPL NRNRU NZNZL OMOMN PAPAN PEPER PFPYF PGPNG PHPHL PKPAK PLPOL PMSPM PRPRI PSPSE PTPRT PYPRY QAQAT REREU ROROU RSSRB " +
    "RURUS RWRWA SASAU SBSLB SCSYC SDSDN SESWE SGSGP SISVN SKSVK SLSLE SNSEN SOSOM SRSUR SSSSD STSTP SVSLV SYSYR SZSWZ TCTCA TDTCD TGTGO THTHA " +
    "TJTJK TMTKM TNTUN TOTON TRTUR TTTTO TWTWN TZTZA UAUKR UGUGA USUSA UYURY UZUZB VCVCT VEVEN VGVGB VIVIR VNVNM VUVUT WSWSM XKXKX YEYEM ZAZAF " +
    "ZMZMB ZWZWE"
  )
    .split(" ")
    .map((pair) => [pair.slice(0, 2), pair.slice(2)] as const),
);

export type Dataset = "ElectricityMaps" | "Ember";

/** One zone's annual values: year → gPerKwh; Ember ships a single value of unknown year (key NaN). */
interface Series {
  dataset: Dataset;
  gPerKwhByYear: Map<number, number>;
  /** The zone the values are for when it is not the one asked (a country stand-in). */
  standIn?: string;
}

export interface OfflineData {
  emaps: Map<string, Map<number, number>>;
  emberGPerKwhByIso3: Map<string, number>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

function loadEmaps(yearly: Record<string, unknown>): Map<string, Map<number, number>> {
  const byZone = new Map<string, Map<number, number>>();
  for (const [key, table] of Object.entries(yearly)) {
    const year = Number(/^yearly(\d{4})$/.exec(key)?.[1]);
    if (!Number.isInteger(year) || !isObject(table) || !isObject(table.data)) continue;
    for (const [zone, row] of Object.entries(table.data)) {
      const gPerKwh = isObject(row) && isObject(row.carbonIntensity) ? row.carbonIntensity.value : undefined;
      if (!isNumber(gPerKwh)) continue;
      if (!byZone.has(zone)) byZone.set(zone, new Map());
      byZone.get(zone)!.set(year, gPerKwh);
    }
  }
  return byZone;
}

/** Reads @tgwf/co2's data modules (CommonJS build: the package ships no type declarations). */
export function loadOfflineData(): OfflineData {
  const mod: unknown = createRequire(import.meta.url)("@tgwf/co2/data");
  if (!isObject(mod) || !isObject(mod.electricityMaps) || !isObject(mod.averageIntensity) || !isObject(mod.averageIntensity.data)) {
    throw new Error("@tgwf/co2/data has an unexpected shape");
  }
  const ember = Object.entries(mod.averageIntensity.data).filter((e): e is [string, number] => isNumber(e[1]));
  return { emaps: loadEmaps(mod.electricityMaps), emberGPerKwhByIso3: new Map(ember) };
}

/** A year's value if the series has it, else its latest year's; year NaN when the dataset does not say. */
function valueFor(series: Series, year: number): { year: number; gPerKwh: number } {
  const exact = series.gPerKwhByYear.get(year);
  if (exact !== undefined) return { year, gPerKwh: exact };
  const latestYear = Math.max(...series.gPerKwhByYear.keys());
  return { year: latestYear, gPerKwh: series.gPerKwhByYear.get(latestYear)! };
}

/** Jan 1 of a year, UTC (Date.UTC would read years 0-99 as 1900-1999). */
function yearStartMs(year: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, 0, 1);
  return d.getTime();
}

export class OfflineProvider implements Provider {
  readonly name = NAME;
  readonly signal = "average" as const;
  readonly fixedEmissionFactor = "lifecycle" as const;
  readonly unconfiguredReason: string | undefined;
  private readonly data: OfflineData;
  private readonly clock: Clock;

  constructor(options: { clock?: Clock; data?: OfflineData } = {}) {
    this.clock = options.clock ?? systemClock;
    let data: OfflineData = { emaps: new Map(), emberGPerKwhByIso3: new Map() };
    try {
      data = options.data ?? loadOfflineData();
    } catch (err) {
      this.unconfiguredReason = `the @tgwf/co2 data could not be loaded: ${err instanceof Error ? err.message : String(err)}`;
    }
    this.data = data;
  }

  covers(zone: string): boolean {
    return this.seriesFor(zone) !== undefined;
  }

  async current(q: Query): Promise<Point> {
    const series = this.requireSeries(q.zone);
    const point = this.point(q, series, new Date(this.clock.nowMs()).getUTCFullYear());
    if (point.isEstimated && !q.allowEstimated)
      throw new AppError(Code.NotFound, `offline: only an estimate for zone ${q.zone} (${point.estimationMethod})`, {
        hint: "allow estimated values",
      });
    return point;
  }

  async range(q: Query, fromMs: number, toMs: number): Promise<Point[]> {
    const series = this.requireSeries(q.zone);
    const firstYear = new Date(fromMs).getUTCFullYear();
    const lastYear = new Date(toMs - 1).getUTCFullYear();
    if (!Number.isFinite(firstYear) || !Number.isFinite(lastYear))
      throw new AppError(Code.InvalidArgument, "offline: range bounds out of range");
    if (lastYear - firstYear >= MAX_YEARS) throw new AppError(Code.InvalidArgument, `offline: range longer than ${MAX_YEARS} years`);
    const points: Point[] = [];
    for (let year = firstYear; toMs > fromMs && year <= lastYear; year++) points.push(this.point(q, series, year));
    return q.allowEstimated ? points : points.filter((p) => !p.isEstimated);
  }

  /** Exact Electricity Maps zone, else its country there, else the country in Ember. */
  private seriesFor(zone: string): Series | undefined {
    const exact = this.data.emaps.get(zone);
    if (exact) return { dataset: "ElectricityMaps", gPerKwhByYear: exact };
    const country = zone.split("-")[0]!;
    const standIn = country === zone ? {} : { standIn: country };
    const national = this.data.emaps.get(country);
    if (national) return { dataset: "ElectricityMaps", gPerKwhByYear: national, ...standIn };
    const ember = this.data.emberGPerKwhByIso3.get(ISO3_BY_ISO2.get(country) ?? "");
    if (ember !== undefined) return { dataset: "Ember", gPerKwhByYear: new Map([[NaN, ember]]), ...standIn };
    return undefined;
  }

  private requireSeries(zone: string): Series {
    if (this.unconfiguredReason) throw new AppError(Code.Unavailable, `offline: ${this.unconfiguredReason}`);
    const series = this.seriesFor(zone);
    if (!series)
      throw new AppError(Code.NotFound, `offline: no annual average for zone ${zone}`, {
        hint: "the @tgwf/co2 datasets have no such zone or country",
      });
    return series;
  }

  private point(q: Query, series: Series, year: number): Point {
    const value = valueFor(series, year);
    const yearLabel = Number.isNaN(value.year) ? "latest" : String(value.year);
    const notes = [
      ...(series.standIn ? [`country ${series.standIn} standing in for ${q.zone}`] : []),
      ...(q.emissionFactor === "direct" ? ["lifecycle only, direct was requested"] : []),
    ];
    return {
      zone: q.zone,
      gPerKwh: value.gPerKwh,
      validFromMs: yearStartMs(year),
      validToMs: yearStartMs(year + 1),
      isEstimated: value.year !== year || series.standIn !== undefined,
      estimationMethod: [`ANNUAL_AVERAGE ${yearLabel} (${series.dataset})`, ...notes].join("; "),
      provider: NAME,
      signal: "average",
      emissionFactor: "lifecycle",
      source: "annual_average",
      fetchedAtMs: this.clock.nowMs(),
    };
  }
}
