#!/usr/bin/env -S node --max-semi-space-size=32
// The installed entry point: carbonmon runs from its TypeScript sources through tsx.
// --max-semi-space-size=32: a young generation of 2 x 32 MiB halves the scavenges under load, which keeps
// the agent's p99 latency under 2 ms (README, "Measured"); the Docker image sets it in NODE_OPTIONS.
import { register } from "tsx/esm/api";

register();
await import("./carbonmon.ts");
