// The unit tier (`npm test`): needs only Node >= 20, npm and a C compiler (the fake libnvidia-ml.so.1).
// Whatever needs more of the system lives in test/e2e/ and runs with `npm run test:e2e` (ava.e2e.config.mjs).
export default {
  extensions: { ts: "module" },
  nodeArguments: ["--import=tsx"],
  workerThreads: false,
  files: ["test/**/*.test.ts", "!test/e2e/**"],
  timeout: "60s",
};
