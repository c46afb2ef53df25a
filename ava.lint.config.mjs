// The static checks (`npm run test:lint`; .ci/run runs them as a tier of their own and counts them): the
// strict TypeScript check and Biome over the whole tree (test/lint.test.ts, what `npm run lint` runs), and
// proto/gen being what `npm run gen` generates plus `buf lint` (test/proto/gen.test.ts). Kept out of
// `npm test` (ava.config.mjs): they check the tree, not the behaviour, and take a CPU-heavy quarter minute.
export default {
  extensions: { ts: "module" },
  nodeArguments: ["--import=tsx"],
  workerThreads: false,
  files: ["test/lint.test.ts", "test/proto/gen.test.ts"],
  timeout: "120s",
};
