# syntax=docker/dockerfile:1
#
# carbonmon: one image for both services.
#
#   docker build -t carbonmon .
#   docker run --rm -p 50061:50061 -v $PWD/secrets:/run/secrets:ro \
#     -e CARBONMON_TLS_CERT_FILE=/run/secrets/tls.crt -e CARBONMON_TLS_KEY_FILE=/run/secrets/tls.key \
#     -e CARBONMON_AUTH_TOKENS_FILE=/run/secrets/tokens.json carbonmon intensity   # the intensity service
#   docker run --rm --gpus all -p 50051:50051 -v $PWD/secrets:/run/secrets:ro (the same three -e) \
#     -v /sys/class/powercap:/host/powercap:ro -e CARBONMON_POWERCAP_ROOT=/host/powercap \
#     carbonmon agent                                                       # the agent on a GPU host
#   docker compose up                                                       # both (docker-compose.yml)
#
# Security: the services listen on 0.0.0.0 in the image, so they refuse to start without TLS and tokens
# (README, "Security"); CARBONMON_INSECURE=true overrides that for a trial on a private network. Secrets are
# files (*_FILE settings, mounted read-only), never environment values or flags; SIGHUP re-reads them.
#
# Privileges (the agent):
#   - GPUs: NVML (libnvidia-ml.so.1) is not in this image. The NVIDIA Container Toolkit injects it into the
#     container (`--gpus all`, or the compose file's GPU reservation); NVIDIA_DRIVER_CAPABILITIES must
#     include "utility" (the toolkit's default does; the agent's compose files and DaemonSet set it).
#     Without it the agent still starts and GetHost says why NVML is unavailable.
#   - CPU/DRAM: RAPL's energy_uj files are root-only on current kernels (a mitigation for the Platypus
#     side channel). The agent therefore runs as root by default: bind-mount /sys/class/powercap read-only
#     and point CARBONMON_POWERCAP_ROOT at it. To run the agent as a non-root user instead, make energy_uj
#     readable on the host (a udev rule or `chmod a+r`) and pass `--user node`.
#   - The intensity service needs no privilege: run it as the unprivileged `node` user (`--user node`; the
#     compose file does), which owns /var/lib/carbonmon in this image.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: production dependencies, with the toolchain for better-sqlite3's native addon ----------------
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# The prepare script (the TypeScript build) needs the dev dependencies: the compile stage runs it.
RUN npm pkg delete scripts.prepare \
 && npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---- compile: the TypeScript sources into dist/ (tsc needs no native addon: install scripts skipped) -----
FROM ${NODE_IMAGE} AS compile
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY server ./server
COPY client ./client
COPY proto ./proto
RUN npm run build

# ---- runtime: Node, the production node_modules, the compiled dist/ and the .proto files (no tsx) -------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=32 \
    CARBONMON_DATA_DIR=/var/lib/carbonmon \
    CARBONMON_AGENT_LISTEN=0.0.0.0:50051 \
    CARBONMON_INTENSITY_LISTEN=0.0.0.0:50061 \
    CARBONMON_AGENT_METRICS_LISTEN=0.0.0.0:9401 \
    CARBONMON_INTENSITY_METRICS_LISTEN=0.0.0.0:9402
# No NVIDIA_* variables here: the intensity service runs from this image too and needs no GPU. The agent's
# compose files and DaemonSet set NVIDIA_VISIBLE_DEVICES=all and NVIDIA_DRIVER_CAPABILITIES=utility.
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json ./
COPY proto/carbonmon ./proto/carbonmon
# Reflection answers from the compiler's descriptors (server/shared/reflection.ts).
COPY proto/gen/descriptors.binpb ./proto/gen/descriptors.binpb
COPY --from=compile /app/dist ./dist
RUN mkdir -p /var/lib/carbonmon && chown node:node /var/lib/carbonmon
VOLUME ["/var/lib/carbonmon"]
# 50051: the agent (EnergyMonitor); 50061: the intensity service (CarbonIntensity); 9401, 9402: their
# Prometheus /metrics.
EXPOSE 50051 50061 9401 9402
# Root by default: the agent needs it for RAPL (see above). SIGTERM shuts down gracefully.
ENTRYPOINT ["node", "dist/bin/carbonmon.js"]
CMD ["serve"]
