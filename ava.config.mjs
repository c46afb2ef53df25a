// The unit tier (`npm test`): needs only Node >= 20, npm and a C compiler (the fake libnvidia-ml.so.1).
// Whatever needs more of the system lives in test/e2e/ and runs with `npm run test:e2e` (ava.e2e.config.mjs).
//
// The tests run as JavaScript transpiled once per run into .tmp/unit-js/ (scripts/unit-tree.mjs, built here
// before every run), with no loader: each test process, CLI process and NVML worker starts ~1 s of CPU
// sooner than through tsx. Type errors are `npm run lint`'s (tsc), not the tests'.
import { accessSync, constants, readdirSync, statfsSync } from "node:fs";
import { buildUnitTree, TREE_DIR } from "./scripts/unit-tree.mjs";

await buildUnitTree();

// `npx ava test/bin/run.test.ts[:LINE]` (or a folder under test/) selects the same file in the tree.
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (/^(\.\/)?test\//.test(arg)) process.argv[i] = `${TREE_DIR}/${arg.replace(/^\.\//, "").replace(/\.ts(?=$|:)/, ".js")}`;
}

// The order files start in. Files that mostly wait on real time (deadlines, sampling, other processes: wall
// time well over their CPU time, measured) start one in every three, the longest first, so that no long one
// starts last and runs alone at the end, and the files between them keep both cores busy; started together,
// the waiters left the cores 35-65 % idle for the run's first 20 s (vmstat). The other files follow in name
// order; a file missing here is one of them.
const WAITERS = [
  "server/intensity/hostile-upstream",
  "server/agent/carbon/carbon",
  "server/agent/api/power-stream",
  "bin/run",
  "bin/commands",
  "server/agent/windows/manager",
  "server/intensity/providers/uk-grid",
  "client/fleet",
  "examples/slurm",
  "server/agent/api/service",
  "readme-examples",
  "server/agent/energy/sampler",
  "bin/lazy-startup",
  "readme-grpcurl",
];
const SPACING = 3;
const unitFiles = readdirSync(new URL(`${TREE_DIR}/test/`, import.meta.url), { recursive: true })
  .filter((f) => f.endsWith(".test.js") && !f.startsWith("e2e/"))
  .map((f) => f.slice(0, -".test.js".length))
  .sort();
for (const name of WAITERS)
  if (!unitFiles.includes(name)) throw new Error(`ava.config.mjs: WAITERS names test/${name}.test.ts, which is gone`);
const others = unitFiles.filter((f) => !WAITERS.includes(f));
const ORDER = [];
for (let w = 0, o = 0; w < WAITERS.length || o < others.length; ) {
  if (w < WAITERS.length) ORDER.push(WAITERS[w++]);
  for (let k = 1; k < SPACING && o < others.length; k++) ORDER.push(others[o++]);
}
const rank = (file) => {
  const i = ORDER.findIndex((name) => file.endsWith(`/test/${name}.test.js`));
  return i === -1 ? ORDER.length : i;
};

// The tests' temporary files (data directories, SQLite databases, fake powercap trees, copies of the fake
// NVML library) go to /dev/shm where it is a writable tmpfs with room, unless TMPDIR is set: measured on
// the 2-core machine, the unit tier spends ~6 % less CPU than on a disk-backed /tmp (SQLite's fsyncs and the
// file copies). The e2e tier keeps the system's TMPDIR: its SIGKILL soaks are about real disks.
function memoryTmpdir() {
  if (process.env.TMPDIR) return undefined;
  try {
    accessSync("/dev/shm", constants.W_OK);
    const fs = statfsSync("/dev/shm");
    return fs.bavail * fs.bsize >= 2 ** 30 ? "/dev/shm" : undefined;
  } catch {
    return undefined;
  }
}
const tmpdir = memoryTmpdir();

export default {
  // The static checks (tsc, Biome, proto/gen current) are a tier of their own: ava.lint.config.mjs.
  files: [
    `${TREE_DIR}/test/**/*.test.js`,
    `!${TREE_DIR}/test/e2e/**`,
    `!${TREE_DIR}/test/lint.test.js`,
    `!${TREE_DIR}/test/proto/gen.test.js`,
  ],
  workerThreads: false,
  // Four test files at once on 2 cores (ava's default is one per core): many tests wait on real servers,
  // processes and timers, and the others' CPU fills those waits. Measured on the 2-core machine: 2 -> 107 s,
  // 4 -> 69 s, 8 -> 97 s and timeouts (load average 3-15 from other work).
  concurrency: 4,
  sortTestFiles: (a, b) => rank(a) - rank(b) || a.localeCompare(b),
  timeout: "60s",
  ...(tmpdir ? { environmentVariables: { TMPDIR: tmpdir } } : {}),
};
