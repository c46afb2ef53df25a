/**
 * carbonmon token new --name N --scopes S,...: a fresh random token, printed once (stdout, for the client's
 * token file) with the line to add to CARBONMON_AUTH_TOKENS_FILE (its SHA-256, never the token, is stored).
 */
import { SCOPES, isScope } from "../../server/shared/security/scopes.js";
import { newToken, PRINCIPAL_NAME, sha256Hex } from "../../server/shared/security/tokens.js";
import { parse, UsageError, type Command } from "./common.js";
import type { CommandIo } from "./io.js";

const HELP = `Usage: carbonmon token new --name NAME --scopes SCOPE[,SCOPE...]

Makes a new bearer token. Prints the token once (keep it in the client's CARBONMON_TOKEN_FILE; it cannot be
recovered) and the entry to add to the "tokens" list of the services' CARBONMON_AUTH_TOKENS_FILE, which
holds only the token's SHA-256. Send SIGHUP to the services to load the changed file.

  --name NAME       the principal: shown in logs, owns the windows it begins (1-64 of [A-Za-z0-9._@:-])
  --scopes LIST     comma-separated: ${SCOPES.join(", ")}
  --help            this text
`;

async function tokenNew(argv: string[], io: CommandIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== "new") throw new UsageError("expected: carbonmon token new --name NAME --scopes LIST");
  const { values } = parse(rest, { name: { type: "string" }, scopes: { type: "string" } });
  if (values.name === undefined || !PRINCIPAL_NAME.test(values.name))
    throw new UsageError("--name is required: 1-64 characters of [A-Za-z0-9._@:-]");
  const scopes = (values.scopes ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = scopes.filter((s) => !isScope(s));
  if (scopes.length === 0 || unknown.length > 0)
    throw new UsageError(
      `--scopes expects a comma-separated list of ${SCOPES.join(", ")}${unknown.length ? `; unknown: ${unknown.join(", ")}` : ""}`,
    );
  const token = newToken();
  const entry = JSON.stringify({ name: values.name, sha256: sha256Hex(token), scopes: [...new Set(scopes)] });
  io.stdout.write(
    `token (shown once; put it in the client's CARBONMON_TOKEN_FILE):\n${token}\n\nadd to the "tokens" list of CARBONMON_AUTH_TOKENS_FILE:\n${entry}\n`,
  );
  return 0;
}

export const tokenCommand: Command = { help: HELP, run: tokenNew };
