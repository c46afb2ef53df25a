// The e2e tier (`npm run test:e2e`): tests that need Debian packages (Python, protoc, Go, tmux, PostgreSQL,
// Prometheus), real-time soaks or big inputs. .ci/run installs what they need and runs both tiers.
import base from "./ava.config.mjs";

export default { ...base, files: ["test/e2e/**/*.test.ts", "!test/e2e/alone/**"], timeout: "120s" };
