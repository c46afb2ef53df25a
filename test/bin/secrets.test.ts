/**
 * No secret ever appears in output: the intensity service runs as a real process with distinctive
 * provider credentials (from *_FILE) that the fake providers refuse, and tokens; every failure path is
 * exercised (providers refusing the credentials, unknown token, missing scope, a secret passed as a flag,
 * --help, a reload); then every byte printed and every answer is searched for the secrets.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { createIntensityClient } from "../../client/index.js";
import { startFakeElectricityMaps } from "../helpers/fake-electricitymaps.js";
import { startFakeWattTime } from "../helpers/fake-watttime.js";
import { tempDataDir } from "../helpers/grpc.js";
import { writeTokens } from "../helpers/security.js";
import { carbonmon, start, until } from "./cli-process.js";

const EM_SECRET = "EMSECRET-c0ffee-41a7";
const WT_USER = "WTUSER-b00b-9e21";
const WT_PASSWORD = "WTPASS-d15c-0b7f";
const BAD_TOKEN = "cmt_BADTOKEN-5e6f-aa01";

test("secrets appear in no log line, error, status detail, --help or answer, on any failure path", async (t) => {
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const em = await startFakeElectricityMaps();
  const wt = await startFakeWattTime();
  t.teardown(() => Promise.all([em.close(), wt.close()]));
  const file = (name: string, text: string) => {
    writeFileSync(join(data.dir, name), text);
    return join(data.dir, name);
  };
  const { file: tokensFile, token } = writeTokens(data.dir, { agent: ["intensity:read"], nosy: ["windows:read"] });
  const secrets = [EM_SECRET, WT_USER, WT_PASSWORD, BAD_TOKEN, token.agent!, token.nosy!];
  const env = {
    CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
    CARBONMON_DATA_DIR: data.dir,
    CARBONMON_LOG_LEVEL: "trace",
    CARBONMON_AUTH_TOKENS_FILE: tokensFile,
    ELECTRICITYMAPS_API_TOKEN_FILE: file("em", `${EM_SECRET}\n`),
    WATTTIME_USERNAME_FILE: file("wu", WT_USER),
    WATTTIME_PASSWORD_FILE: file("wp", WT_PASSWORD),
    CARBONMON_ELECTRICITYMAPS_URL: em.url,
    CARBONMON_WATTTIME_URL: wt.url,
    CARBONMON_PROVIDERS: "electricitymaps,watttime,offline",
  };
  const outputs: string[] = [];

  const service = start(["intensity"], env);
  t.teardown(() => void service.kill("SIGKILL"));
  const up = await until(service, (f) => /"msg":"listening"/.test(f.stderr));
  const address = /"address":"([^"]+)"/.exec(up.stderr)![1]!;

  const answers: unknown[] = [];
  const ask = async (tok: string | undefined, location: string) => {
    const client = createIntensityClient(address, { retries: 0, security: tok ? { token: tok } : {} });
    try {
      answers.push(await client.current(location));
    } catch (err) {
      answers.push({ message: (err as Error).message, ...(err as object) });
    } finally {
      client.close();
    }
  };
  await ask(token.agent, "DE"); // ElectricityMaps refuses the token, WattTime the login: offline answers
  await ask(token.agent, "CAISO_NORTH");
  await ask(BAD_TOKEN, "DE");
  await ask(token.nosy, "DE");
  await ask(undefined, "DE");
  t.true(em.requests.length > 0 && wt.requests.length > 0, "the providers were asked, with the secrets, and refused them");

  const badTokenFile = file("bad-token", `${BAD_TOKEN}\n`);
  // Independent processes: run at once (their outputs are searched together).
  const runs = await Promise.all(
    [
      ["intensity", "now", "--location", "DE", "--addr", address, "--token-file", badTokenFile],
      ["intensity", "now", "--location", "DE", "--addr", address, "--token-file", file("nosy-token", token.nosy!)],
      ["intensity", "--help"],
      ["agent", "--help"],
      ["intensity", "--electricitymaps-api-token", EM_SECRET, "--listen", "127.0.0.1:0"],
      ["intensity", `--watttime-password=${WT_PASSWORD}`],
    ].map((args) => carbonmon(args, { ...env, CARBONMON_LOG_LEVEL: "trace" })),
  );
  for (const r of runs) outputs.push(r.stdout, r.stderr);
  // A reload whose tokens file is broken: logged, the old tokens stay.
  writeFileSync(tokensFile, `{"tokens": [${JSON.stringify(token.agent)}`);
  service.kill("SIGHUP");
  await until(service, (f) => /reload failed/.test(f.stderr));
  service.kill("SIGTERM");
  const finished = await service.done;
  outputs.push(
    finished.stdout,
    finished.stderr,
    JSON.stringify(answers, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)),
  );

  const all = outputs.join("\n");
  t.regex(all, /secrets are not accepted on the command line/);
  t.regex(all, /UNAUTHENTICATED/);
  t.regex(all, /PERMISSION_DENIED/);
  t.regex(finished.stderr, /"msg":"call denied"/);
  for (const secret of secrets) t.false(all.includes(secret), `a secret leaked: ${secret.slice(0, 6)}…`);
});
