/** The store suite against SQLite (the default store), plus what only the SQLite file has. */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import Database from "better-sqlite3";
import { SqliteStore } from "../../../../server/intensity/store/sqlite.js";
import type { IntensityStore } from "../../../../server/intensity/store/store.js";
import { tempDataDir } from "../../../helpers/grpc.js";
import { storeSuite } from "./store-suite.js";

const dirs = new WeakMap<IntensityStore, string>();
const cleanups: Array<() => void> = [];
test.after.always(() => cleanups.forEach((c) => c()));

storeSuite(test, "sqlite", {
  fresh: async () => {
    const data = tempDataDir();
    cleanups.push(data.cleanup);
    const store = new SqliteStore(data.dir);
    dirs.set(store, data.dir);
    return store;
  },
  sameDatabase: async (store) => {
    const dir = dirs.get(store)!;
    const other = new SqliteStore(dir);
    dirs.set(other, dir);
    return other;
  },
});

test("sqlite: a database from before versioned migrations (points only, user_version 0) is upgraded and keeps its points", async (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  mkdirSync(data.dir, { recursive: true });
  const old = new Database(join(data.dir, "intensity.db"));
  old.exec(`CREATE TABLE points (provider TEXT NOT NULL, zone TEXT NOT NULL, emission_factor TEXT NOT NULL, valid_from_ms INTEGER NOT NULL,
    valid_to_ms INTEGER NOT NULL, g_per_kwh REAL NOT NULL, is_estimated INTEGER NOT NULL, estimation_method TEXT, signal TEXT NOT NULL,
    source TEXT NOT NULL, fetched_at_ms INTEGER NOT NULL, source_updated_at_ms INTEGER, PRIMARY KEY (provider, zone, emission_factor, valid_from_ms));
    INSERT INTO points VALUES ('static', 'DE', 'lifecycle', 0, 3600000, 350, 0, NULL, 'average', 'configured', 1, NULL);`);
  old.close();
  const store = new SqliteStore(data.dir);
  t.teardown(() => store.close());
  t.is((await store.range("static", "DE", "lifecycle", 0, 1)).length, 1);
  t.true(await store.tryLease("k", "A", 1000), "the tables of version 2 exist");
  const db = new Database(join(data.dir, "intensity.db"), { readonly: true });
  t.is(db.pragma("user_version", { simple: true }), 2);
  db.close();
});
