// The unit tier (`npm test`): needs only Node >= 20, npm and a C compiler (the fake libnvidia-ml.so.1).
// Whatever needs more of the system lives in test/e2e/ and runs with `npm run test:e2e` (ava.e2e.config.mjs).
//
// The tests run as JavaScript transpiled once per run into .tmp/unit-js/ (scripts/unit-tree.mjs, built here
// before every run), with no loader: each test process, CLI process and NVML worker starts ~1 s of CPU
// sooner than through tsx. Type errors are `npm run lint`'s (tsc), not the tests'.
import { accessSync, constants, statfsSync } from "node:fs";
import { buildUnitTree, TREE_DIR } from "./scripts/unit-tree.mjs";

await buildUnitTree();

// `npx ava test/bin/run.test.ts[:LINE]` (or a folder under test/) selects the same file in the tree.
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (/^(\.\/)?test\//.test(arg)) process.argv[i] = `${TREE_DIR}/${arg.replace(/^\.\//, "").replace(/\.ts(?=$|:)/, ".js")}`;
}

// The longest files start first, so that none of them starts last and runs alone at the end (measured wall
// time of each file run alone; a file missing here only starts later).
const SLOW_FIRST = [
  "server/intensity/hostile-upstream",
  "server/agent/carbon/carbon",
  "bin/commands",
  "bin/run",
  "server/agent/windows/manager",
  "bin/window",
  "server/agent/api/power-stream",
  "client/agent-client",
  "readme-examples",
  "server/agent/energy/sampler",
  "client/fleet",
  "server/intensity/metrics",
  "bin/secrets",
  "bin/intensity-best",
  "server/agent/storage/store",
  "examples/slurm",
];
const rank = (file) => {
  const i = SLOW_FIRST.findIndex((name) => file.endsWith(`/test/${name}.test.js`));
  return i === -1 ? SLOW_FIRST.length : i;
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
