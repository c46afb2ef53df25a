// `node --import ./test/helpers/log-loads.mjs …`: prints "LOADED <url>" on stderr for every module the
// process loads through the ESM loader (test/bin/lazy-startup.test.ts checks what a command pulls in).
import { register } from "node:module";

register(
  "data:text/javascript,export async function load(url, context, next) { process.stderr.write(`LOADED ${url}\\n`); return next(url, context); }",
);
