/**
 * The layout's rules, checked on the sources: protobuf only at the agent's edge, neither service importing
 * the other, pure arithmetic in core/, and no module-level switches.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import test from "ava";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? sources(path) : e.name.endsWith(".ts") ? [path] : [];
  });
}

/** Every module a file imports (static and dynamic), as a path from the repository root or a package name. */
function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)["']([^"']+)["']/g)].map((m) => m[1]!);
  return specs.map((s) => (s.startsWith(".") ? relative(ROOT, resolve(dirname(join(ROOT, file)), s)) : s));
}

const agent = sources("server/agent");
const intensity = sources("server/intensity");

test("only server/agent/api imports the generated protobuf code", (t) => {
  const offenders = agent.filter((f) => !f.startsWith("server/agent/api/") && imports(f).some((i) => i.startsWith("proto/gen/")));
  t.deepEqual(offenders, []);
  t.true(
    imports("server/agent/api/service.ts").some((i) => i.startsWith("proto/gen/")),
    "the check sees imports at all",
  );
});

test("neither service imports the other; what both need lives in server/shared", (t) => {
  t.deepEqual(
    agent.filter((f) => imports(f).some((i) => i.startsWith("server/intensity/"))),
    [],
  );
  t.deepEqual(
    intensity.filter((f) => imports(f).some((i) => i.startsWith("server/agent/"))),
    [],
  );
  t.deepEqual(
    sources("server/shared").filter((f) => imports(f).some((i) => /^server\/(agent|intensity)\//.test(i))),
    [],
  );
});

test("core/ is pure: no I/O, no gRPC, no clock, nothing outside core/", (t) => {
  for (const dir of ["server/agent/core", "server/intensity/core"]) {
    for (const f of sources(dir)) {
      const outside = imports(f).filter(
        (i) => !i.startsWith(`${dir}/`) && !i.startsWith("server/shared/units") && !i.startsWith("server/shared/errors"),
      );
      t.deepEqual(outside, [], f);
    }
  }
});

test("no module-level mutable state except memoised lazy loads", (t) => {
  // A `let` at the top of a module is a switch every importer shares (the simulated GPU used to be one).
  // Allowed: values loaded once on first use and never flipped back.
  const lazy = new Set([
    "server/shared/serve.ts",
    "server/shared/reflection.ts",
    "server/shared/security/jwt.ts",
    "server/agent/storage/journal.ts",
  ]);
  const offenders = [...agent, ...intensity, ...sources("server/shared")].filter(
    (f) => !lazy.has(f) && /^(export )?let /m.test(readFileSync(join(ROOT, f), "utf8")),
  );
  t.deepEqual(offenders, []);
});
