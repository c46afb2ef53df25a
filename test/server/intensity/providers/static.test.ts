import test from "ava";
import { ManualClock } from "../../../../server/shared/clock.js";
import { AppError, Code } from "../../../../server/shared/errors.js";
import type { Query } from "../../../../server/intensity/providers/provider.js";
import { parseConstants, StaticProvider } from "../../../../server/intensity/providers/static.js";

const HOUR_MS = 3_600_000;
const DE: Query = { zone: "DE", emissionFactor: "lifecycle", allowEstimated: false };

test("parseConstants reads ZONE=gPerKwh pairs", (t) => {
  t.deepEqual(
    parseConstants("DE=350,GB=180.5"),
    new Map([
      ["DE", 350],
      ["GB", 180.5],
    ]),
  );
  t.deepEqual(
    parseConstants(" de = 350 , US-MIDW-MISO=501, RU-1=0,"),
    new Map([
      ["DE", 350],
      ["US-MIDW-MISO", 501],
      ["RU-1", 0],
    ]),
  );
  t.is(parseConstants("").size, 0);
  t.is(parseConstants("  ").size, 0);
});

for (const bad of ["DE", "DE=", "=350", "DE=abc", "DE=-1", "DE=1e3", "DE=1=2", "Germany=350", "D1=4", "DE=350,DE=351"]) {
  test(`parseConstants refuses ${JSON.stringify(bad)}, naming the entry`, (t) => {
    const err = t.throws(() => parseConstants(`GB=180,${bad}`), { instanceOf: AppError });
    t.is(err?.code, Code.InvalidArgument);
    const entry = bad.includes(",") ? bad.split(",")[1]! : bad;
    t.true(err!.message.includes(JSON.stringify(entry)), err!.message);
  });
}

test("range: the constant once per UTC hour overlapping the range", async (t) => {
  const clock = new ManualClock(Date.parse("2024-11-30T12:10Z"));
  const provider = new StaticProvider(parseConstants("DE=350,GB=180.5"), { clock });
  const points = await provider.range(DE, Date.parse("2024-11-30T10:30Z"), Date.parse("2024-11-30T13:00Z"));
  t.deepEqual(
    points.map((p) => new Date(p.validFromMs).toISOString()),
    ["10", "11", "12"].map((h) => `2024-11-30T${h}:00:00.000Z`),
  );
  t.true(points.every((p) => p.validToMs === p.validFromMs + HOUR_MS));
  for (const p of points) {
    t.like(p, {
      zone: "DE",
      gPerKwh: 350,
      isEstimated: false,
      provider: "static",
      signal: "average",
      source: "configured",
      emissionFactor: "lifecycle",
    });
  }
  t.deepEqual(await provider.range(DE, Date.parse("2024-11-30T10:30Z"), Date.parse("2024-11-30T10:30Z")), []);
  t.is((await provider.range({ ...DE, zone: "GB", emissionFactor: "direct" }, 0, 1))[0]!.emissionFactor, "direct");
});

test("current: the hour containing now", async (t) => {
  const clock = new ManualClock(Date.parse("2024-11-30T12:59:59.999Z"));
  const p = await new StaticProvider({ GB: 180.5 }, { clock }).current({ ...DE, zone: "GB" });
  t.is(p.gPerKwh, 180.5);
  t.is(p.validFromMs, Date.parse("2024-11-30T12:00Z"));
  t.is(p.validToMs, Date.parse("2024-11-30T13:00Z"));
});

test("zones without a constant are not covered; an empty map is unconfigured", async (t) => {
  const provider = new StaticProvider(parseConstants("DE=350"));
  t.is(provider.unconfiguredReason, undefined);
  t.true(provider.covers("DE"));
  t.false(provider.covers("FR"));
  const err = await t.throwsAsync(provider.current({ ...DE, zone: "FR" }), { instanceOf: AppError });
  t.is(err?.code, Code.NotFound);
  t.regex(new StaticProvider(new Map()).unconfiguredReason ?? "", /no constant intensities configured/);
});
