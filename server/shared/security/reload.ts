/** SIGHUP re-reads every server's certificates, tokens and JWKS; open connections and streams stay. */
import type { Logger } from "../log.js";

export function reloadOnSighup(servers: ReadonlyArray<{ reload(): void }>, log: Logger): void {
  process.on("SIGHUP", () => {
    log.info({ signal: "SIGHUP" }, "reloading certificates and tokens");
    for (const s of servers) s.reload();
  });
}
