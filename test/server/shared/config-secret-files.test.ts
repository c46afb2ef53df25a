/** Secrets from files (<VAR>_FILE), as Kubernetes and compose mount them. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { type ConfigError, loadIntensityConfig, SETTINGS } from "../../../server/shared/config.js";
import { tempDataDir } from "../../helpers/grpc.js";

test("a secret setting is read from the file named by <VAR>_FILE, without its trailing newline; an empty file is unset", (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const file = (name: string, text: string) => {
    writeFileSync(join(data.dir, name), text);
    return join(data.dir, name);
  };
  const c = loadIntensityConfig({
    env: {
      ELECTRICITYMAPS_API_TOKEN_FILE: file("em", "tok-123\n"),
      CARBONMON_DATABASE_URL_FILE: file("db", "postgres://u:p@db:5432/carbonmon\n"),
      WATTTIME_USERNAME_FILE: file("wu", ""),
      WATTTIME_PASSWORD_FILE: file("wp", ""),
    },
  });
  t.is(c.electricitymapsApiToken, "tok-123");
  t.is(c.databaseUrl, "postgres://u:p@db:5432/carbonmon");
  t.is(c.watttimeUsername, undefined, "an empty secret is no secret (both empty: WattTime off, no error)");
  t.is(
    loadIntensityConfig({ env: { ELECTRICITYMAPS_API_TOKEN: "direct", ELECTRICITYMAPS_API_TOKEN_FILE: file("em2", "from-file") } })
      .electricitymapsApiToken,
    "direct",
    "the variable wins",
  );
});

test("an unreadable secret file is reported by name with the other problems; the file's content never appears", (t) => {
  const err = t.throws(() =>
    loadIntensityConfig({ env: { ELECTRICITYMAPS_API_TOKEN_FILE: "/nonexistent/em-token", CARBONMON_DATABASE_URL: "mysql://x" } }),
  ) as ConfigError;
  t.true(err.problems.some((p) => p === 'ELECTRICITYMAPS_API_TOKEN_FILE="/nonexistent/em-token": cannot read it (ENOENT)'));
  t.true(err.problems.some((p) => p.startsWith("CARBONMON_DATABASE_URL: expected a postgres://")));
  t.false(err.message.includes("mysql://x"), "a database URL may hold a password: not echoed");
});

test("only credentials have a file form", (t) => {
  const secret = SETTINGS.filter((s) => "secret" in s)
    .map((s) => s.env)
    .sort();
  t.deepEqual(secret, ["CARBONMON_DATABASE_URL", "ELECTRICITYMAPS_API_TOKEN", "WATTTIME_PASSWORD", "WATTTIME_USERNAME"]);
  t.notThrows(() => loadIntensityConfig({ env: { CARBONMON_LOG_LEVEL_FILE: "/nonexistent" } }), "not a secret: its _FILE form is not read");
});
