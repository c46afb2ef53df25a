/**
 * The store suite against a real PostgreSQL (a throwaway cluster from Debian's initdb/pg_ctl, see
 * test/helpers/postgres.ts), plus what only PostgreSQL has: migrations under the advisory lock.
 */
import test from "ava";
import pg from "pg";
import { PostgresStore } from "../../server/intensity/store/postgres.js";
import type { IntensityStore } from "../../server/intensity/store/store.js";
import { silentLogger } from "../../server/shared/log.js";
import { startPostgres, type TestPostgres } from "../helpers/postgres.js";
import { storeSuite } from "../server/intensity/store/store-suite.js";

let cluster: TestPostgres;
let databases = 0;
const urls = new WeakMap<IntensityStore, string>();

test.before(async () => {
  cluster = await startPostgres();
});
test.after.always(async () => {
  await cluster?.stop();
});

const open = async (url: string) => {
  const store = await PostgresStore.open(url, silentLogger());
  urls.set(store, url);
  return store;
};

storeSuite(test, "postgres", {
  fresh: async () => open(await cluster.createDatabase(`suite_${++databases}`)),
  sameDatabase: async (store) => open(urls.get(store)!),
});

test("postgres: replicas starting at once on an empty database migrate it once, under the advisory lock", async (t) => {
  const url = await cluster.createDatabase("concurrent_start");
  const stores = await Promise.all(Array.from({ length: 5 }, () => open(url)));
  t.teardown(() => Promise.all(stores.map((s) => s.close())));
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());
  const rows = (await client.query("SELECT version, description FROM schema_migrations ORDER BY version")).rows;
  t.deepEqual(
    rows.map((r) => r.version),
    [1, 2],
  );
  const tables = (await client.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")).rows.map(
    (r) => r.tablename,
  );
  t.deepEqual(tables, ["answers", "budgets", "leases", "points", "schema_migrations"]);
});

test("postgres: a bad URL or an unreachable server is FAILED_PRECONDITION naming the setting, without the password", async (t) => {
  const url = cluster.url.replace("carbonmon@", "carbonmon:s3cret-pw@").replace(/\/postgres$/, "/no_such_database");
  const err = await t.throwsAsync(PostgresStore.open(url, silentLogger()));
  t.is((err as { code?: string }).code, "FAILED_PRECONDITION");
  t.regex(err!.message, /no_such_database/);
  t.regex((err as { hint?: string }).hint ?? "", /CARBONMON_DATABASE_URL/);
  t.false(err!.message.includes("s3cret-pw"));
});
