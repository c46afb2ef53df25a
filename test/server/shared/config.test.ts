import test from "ava";
import { ConfigError, helpText, loadAgentConfig, loadIntensityConfig, parseLatLon, SETTINGS } from "../../../server/shared/config.js";

test("defaults apply when nothing is set", (t) => {
  const c = loadAgentConfig({ env: {}, argv: [] });
  t.is(c.listen, "127.0.0.1:50051");
  t.is(c.samplingPeriodMs, 100);
  t.is(c.powercapRoot, "/sys/class/powercap");
  t.is(c.intensityAddr, undefined);
  t.is(c.emissionFactor, "lifecycle");
  t.true(c.allowEstimated);
  t.is(c.carbonTimeoutMs, 2000);
  t.is(c.carbonRetryMs, 30_000);
  t.false(c.dataDir.startsWith("~"));
  const i = loadIntensityConfig({ env: {} });
  t.is(i.listen, "127.0.0.1:50061");
  t.is(i.electricitymapsUrl, "https://api.electricitymap.org/v3");
  t.is(i.electricitymapsApiToken, undefined);
});

test("a flag wins over its environment variable, in both --flag value and --flag=value forms", (t) => {
  const env = { CARBONMON_AGENT_LISTEN: "0.0.0.0:1", CARBONMON_SAMPLING_PERIOD_MS: "200" };
  const c = loadAgentConfig({ env, argv: ["--listen", "127.0.0.1:7", "--sampling-period-ms=50"] });
  t.is(c.listen, "127.0.0.1:7");
  t.is(c.samplingPeriodMs, 50);
});

test("every bad setting is reported at once, with the variable's name and what is allowed", (t) => {
  const err = t.throws(() =>
    loadAgentConfig({
      env: {
        CARBONMON_AGENT_LISTEN: "nowhere",
        CARBONMON_SAMPLING_PERIOD_MS: "fast",
        CARBONMON_LOCATION: "Mars",
        CARBONMON_LOG_LEVEL: "loud",
      },
      argv: ["--bogus", "1"],
    }),
  ) as ConfigError;
  t.true(err instanceof ConfigError);
  t.is(err.problems.length, 5);
  t.regex(err.message, /CARBONMON_AGENT_LISTEN="nowhere": expected host:port/);
  t.regex(err.message, /CARBONMON_SAMPLING_PERIOD_MS="fast": expected a whole number from 10 to 10000/);
  t.regex(err.message, /CARBONMON_LOCATION="Mars"/);
  t.regex(err.message, /CARBONMON_LOG_LEVEL="loud": expected one of/);
  t.regex(err.message, /unknown option --bogus/);
});

test("carbon settings: emission factor, estimated values, timeout and retry are checked", (t) => {
  const c = loadAgentConfig({
    env: { CARBONMON_EMISSION_FACTOR: "direct", CARBONMON_ALLOW_ESTIMATED: "false" },
    argv: ["--carbon-timeout-ms", "500", "--carbon-retry-ms=1000"],
  });
  t.deepEqual([c.emissionFactor, c.allowEstimated, c.carbonTimeoutMs, c.carbonRetryMs], ["direct", false, 500, 1000]);
  const err = t.throws(() =>
    loadAgentConfig({ env: { CARBONMON_EMISSION_FACTOR: "marginal", CARBONMON_ALLOW_ESTIMATED: "yes", CARBONMON_CARBON_TIMEOUT_MS: "0" } }),
  ) as ConfigError;
  t.is(err.problems.length, 3);
  t.regex(err.message, /CARBONMON_EMISSION_FACTOR="marginal": expected one of lifecycle, direct/);
  t.regex(err.message, /CARBONMON_ALLOW_ESTIMATED="yes": expected true or false/);
  t.regex(err.message, /CARBONMON_CARBON_TIMEOUT_MS="0": expected a whole number from 10/);
});

test("WattTime needs both username and password", (t) => {
  const err = t.throws(() => loadIntensityConfig({ env: { WATTTIME_USERNAME: "me" } }));
  t.regex(err!.message, /WATTTIME_USERNAME and WATTTIME_PASSWORD/);
});

test("locations: lat,lon in range, zones, auto", (t) => {
  t.deepEqual(parseLatLon("42.2776,-83.7409"), { lat: 42.2776, lon: -83.7409 });
  t.is(parseLatLon("91,0"), undefined);
  t.is(loadAgentConfig({ env: { CARBONMON_LOCATION: "US-MIDW-MISO" } }).location, "US-MIDW-MISO");
  t.is(loadAgentConfig({ env: { CARBONMON_LOCATION: "auto" } }).location, "auto");
  t.is(loadAgentConfig({ env: { CARBONMON_LOCATION: "CAISO_NORTH" } }).location, "CAISO_NORTH", "WattTime regions are zones too");
  t.throws(() => loadAgentConfig({ env: { CARBONMON_LOCATION: "caiso_north" } }));
  t.throws(() => loadAgentConfig({ env: { CARBONMON_LOCATION: "200,0" } }));
});

test("--help lists every setting of the service with its variable", (t) => {
  const help = helpText("agent");
  for (const s of SETTINGS.filter((s) => (s.services as readonly string[]).includes("agent"))) {
    t.true(help.includes(s.env), s.env);
  }
  t.false(help.includes("ELECTRICITYMAPS_API_TOKEN"));
});
