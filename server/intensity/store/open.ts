/**
 * The store the configuration asks for: PostgreSQL when CARBONMON_DATABASE_URL is set, else SQLite in the
 * data directory. The PostgreSQL driver (pg, ~60 ms of CPU to load) is imported only when it is asked for.
 */
import type { IntensityConfig } from "../../shared/config.js";
import type { Logger } from "../../shared/log.js";
import { SqliteStore } from "./sqlite.js";
import type { IntensityStore } from "./store.js";

export async function openStore(config: Pick<IntensityConfig, "dataDir" | "databaseUrl">, log: Logger): Promise<IntensityStore> {
  const store = config.databaseUrl
    ? await (await import("./postgres.js")).PostgresStore.open(config.databaseUrl, log)
    : new SqliteStore(config.dataDir);
  log.info({ store: store.kind }, "intensity store open");
  return store;
}
