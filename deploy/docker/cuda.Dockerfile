# syntax=docker/dockerfile:1
# imtrain for NVIDIA GPUs with CUDA: the tensorflow-gpu backend (@tensorflow/tfjs-node-gpu 4.22.0). Its
# libtensorflow 2.9.1 was built against CUDA 11.2 and cuDNN 8.1, so the image is NVIDIA's CUDA 11.2 +
# cuDNN 8 runtime image (cuDNN 8.1.1). The host needs an NVIDIA driver >= 450.80 (CUDA 11's minor-version
# compatibility) and the NVIDIA container toolkit. x86-64 only (libtensorflow's GPU build). On Hopper
# GPUs libtensorflow 2.9 runs only through the driver's PTX JIT: use the vulkan image there.
# Build from the repository root:
#
#   docker build -f deploy/docker/cuda.Dockerfile -t REGISTRY/imtrain:0.1.0-cuda .
#
# If NVIDIA has taken the base tag off Docker Hub, build the same image from NVIDIA's published
# Dockerfiles (gitlab.com/nvidia/container-images/cuda) and pass it: --build-arg CUDA_BASE_IMAGE=…
ARG CUDA_BASE_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04

# ---- build: compile the TypeScript, then drop the dev dependencies (tsc, eslint, prettier). The same in
# cpu, cuda and vulkan.Dockerfile: Dockerfile has no include, so the stage is repeated, and
# test/integration/docker-images.test.ts fails if the three copies differ.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY shared/ shared/
COPY worker/ worker/
COPY coordinator/ coordinator/
COPY report/ report/
COPY cli/ cli/
COPY experiment/ experiment/
# experiment configs, and the shipped results `imtrain analyze` recommends a λ from
COPY experiments/ experiments/
# tsconfig also includes test/ and bench/: they are not copied, so only the CLI and its imports compile.
# main.js is made executable for the /usr/local/bin/imtrain link below.
RUN npm run build && chmod 755 dist/cli/main.js && npm prune --omit=dev --no-audit --no-fund

# ---- runtime-base: the CUDA runtime plus Node.js 20, copied from the build stage (the official binary
# needs glibc 2.28; Ubuntu 20.04 has 2.31).
FROM ${CUDA_BASE_IMAGE} AS runtime-base
COPY --from=build /usr/local/bin/node /usr/local/bin/node

# ---- deps: add tfjs-node-gpu, whose install downloads libtensorflow (GPU) and the prebuilt addon, or
# compiles the addon (python3, make, g++: only in this stage) if none fits. It runs on the runtime base so
# the addon matches its glibc. The version must be package-lock.json's @tensorflow/tfjs-core (the test
# checks); --no-save leaves package.json and the lockfile as they are. Dawn goes, as in the cpu image.
FROM runtime-base AS deps
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules node_modules/
COPY --from=build /app/dist dist/
COPY --from=build /app/experiments experiments/
RUN npm install --no-save --omit=dev --no-audit --no-fund @tensorflow/tfjs-node-gpu@4.22.0 \
  && rm -rf node_modules/webgpu node_modules/@tensorflow/tfjs-backend-webgpu

# ---- the image: the CUDA runtime, Node.js and the dependencies, without npm or a compiler. compute is the
# driver capability CUDA needs (the base image sets the same; said here because it matters).
FROM runtime-base
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility
# ---- From here to the end the same in all three images (the test checks it).
# A numeric non-root user, so Kubernetes' runAsNonRoot can check it. Its home, /work, is the working
# directory: runs/ and relative paths land there (mount a volume on it). /app stays root's, read-only.
RUN groupadd --gid 10001 imtrain \
  && useradd --uid 10001 --gid 10001 --home-dir /work --create-home --shell /usr/sbin/nologin imtrain
COPY --from=deps /app/package.json /app/package.json
COPY --from=deps /app/node_modules /app/node_modules
COPY --from=deps /app/dist /app/dist
COPY --from=deps /app/experiments /app/experiments
# `imtrain` on the PATH too, for `docker exec … imtrain` and a Kubernetes `command:`.
RUN ln -s /app/dist/cli/main.js /usr/local/bin/imtrain
ENV NODE_ENV=production
USER 10001:10001
WORKDIR /work
# Node is PID 1 (exec-form entrypoint: no shell, no init) and handles SIGTERM itself: the first one
# finishes the step in progress, checkpoints and exits 0; a second exits at once (130). Give
# `docker stop --time` (or terminationGracePeriodSeconds) more than a step plus a checkpoint.
STOPSIGNAL SIGTERM
# Docker's health check (Kubernetes ignores it and uses its probes): GET /healthz on the port PID 1 serves
# metrics on, read from PID 1's own command line (--metrics-port, --metrics-host, or a --config file) with
# the CLI's own flag reader. 200 is healthy; 503 (stopping, failed), no answer or nothing listening is
# not. With no --metrics-port, or 0 (a free port, only logged), there is nothing to ask: healthy while
# the process runs. IMTRAIN_HEALTHCHECK_PID points it at another process (the tests do).
HEALTHCHECK --interval=30s --timeout=10s --start-period=2m --retries=3 \
  CMD ["node", "--input-type=module", "--eval", "\
import { readFileSync } from 'node:fs'; \
import { resolve } from 'node:path'; \
import { lastRawFlag } from '/app/dist/cli/raw-args.js'; \
const pid = process.env.IMTRAIN_HEALTHCHECK_PID || '1'; \
const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\\0'); \
const file = lastRawFlag(args, 'config')?.text; \
const config = file \
  ? (await import('/app/dist/cli/config-file.js')).readConfigFile(resolve(`/proc/${pid}/cwd`, file)).values \
  : {}; \
const flag = (name, key) => lastRawFlag(args, name)?.text ?? config[name] ?? config[key]; \
const port = String(flag('metrics-port', 'metricsPort') ?? ''); \
if (port === '' || port === '0') { console.log('no fixed --metrics-port: nothing to check'); process.exit(0); } \
const listen = String(flag('metrics-host', 'metricsHost') ?? '127.0.0.1'); \
const host = ['0.0.0.0', '::'].includes(listen) ? '127.0.0.1' : listen.includes(':') ? `[${listen}]` : listen; \
const url = `http://${host}:${port}/healthz`; \
const response = await fetch(url, { signal: AbortSignal.timeout(5000) }).catch((error) => { \
  console.log(`${url}: ${error.cause?.code ?? error.message}`); process.exit(1); }); \
console.log(`${url}: ${response.status} ${(await response.text()).trim()}`); \
process.exit(response.ok ? 0 : 1);"]
# The container's arguments are an imtrain command and its flags: `docker run IMAGE train --data …`.
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["--help"]
