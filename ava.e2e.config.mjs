// The e2e tier (`npm run test:e2e`): tests that need Debian packages (Python, protoc, Go, tmux, PostgreSQL,
// Prometheus), real-time soaks or big inputs. .ci/run installs what they need and runs both tiers. They run
// on the TypeScript sources through tsx (the unit tier runs transpiled JavaScript: ava.config.mjs).
export default {
  extensions: { ts: "module" },
  nodeArguments: ["--import=tsx"],
  workerThreads: false,
  files: ["test/e2e/**/*.test.ts", "!test/e2e/alone/**"],
  timeout: "120s",
};
