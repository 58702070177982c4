# syntax=docker/dockerfile:1
# imtrain for CPUs: the wasm backend. For the coordinator, CPU workers and smoke tests. Build from the
# repository root (deploy/docker/README.md has the three images and how to run them):
#
#   docker build -f deploy/docker/cpu.Dockerfile -t REGISTRY/imtrain:0.1.0-cpu .

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

# ---- deps: the production dependencies, less Dawn (the webgpu package, ~130 MB of prebuilt binaries for
# five platforms) and tfjs's webgpu backend: they are the vulkan image's. Here --backend webgpu says they
# are not installed.
FROM build AS deps
RUN rm -rf node_modules/webgpu node_modules/@tensorflow/tfjs-backend-webgpu

# ---- the image: Node.js 20 on Debian 12, nothing added.
FROM node:20-bookworm-slim
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
