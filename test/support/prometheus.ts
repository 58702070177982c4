// A real Prometheus (and promtool) for tests: Debian's `prometheus` package ships both. Prometheus runs on
// a free loopback port with its config and TSDB in a temp folder, and is queried over its HTTP API.
// Missing binaries skip the test locally but fail loudly in CI, where .ci/run installs the package.
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import type { TestContext } from "node:test";
import { startChildServer, type ChildServer } from "../../coordinator/child-server.js";
import { freePort } from "./nats.js";
import { tempDir } from "./tiny.js";

const PACKAGE = "prometheus";
const POLL_INTERVAL_MS = 100;
const REQUEST_TIMEOUT_MS = 5_000;

/** `name` on PATH, else in /usr/bin (where Debian puts it), else undefined. */
export function findBinary(name: string): string | undefined {
  for (const dir of [...(process.env["PATH"] ?? "").split(delimiter), "/usr/bin"]) {
    if (dir !== "" && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

function requireBinary(t: TestContext, name: string): string | undefined {
  const binary = findBinary(name);
  if (binary !== undefined) return binary;
  if (process.env["CI"] === "true")
    throw new Error(`${name} is not installed: CI must install the ${PACKAGE} package (.ci/run)`);
  t.skip(`${name} not installed (apt-get install ${PACKAGE})`);
  return undefined;
}

/** The promtool binary, or undefined after marking the test skipped (locally) — or throws in CI. */
export function requirePromtool(t: TestContext): string | undefined {
  return requireBinary(t, "promtool");
}

/** The prometheus binary, or undefined after marking the test skipped (locally) — or throws in CI. */
export function requirePrometheus(t: TestContext): string | undefined {
  return requireBinary(t, "prometheus");
}

/** One series of an instant query: its labels and [unix seconds, value as Prometheus prints it]. */
export interface InstantVectorResult {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: readonly [number, string];
}

/** A scrape target as /api/v1/targets reports it. */
export interface ActiveTarget {
  readonly labels: Readonly<Record<string, string>>;
  readonly scrapeUrl: string;
  readonly health: "up" | "down" | "unknown";
  readonly lastError: string;
}

/** A rule as /api/v1/rules reports it; health is "unknown" until its first evaluation. */
export interface LoadedRule {
  readonly name: string;
  readonly type: "alerting" | "recording";
  readonly health: "ok" | "err" | "unknown";
  readonly lastError?: string;
}

export interface RuleGroup {
  readonly name: string;
  readonly file: string;
  readonly rules: readonly LoadedRule[];
}

export interface PrometheusHandle {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** An instant query at the current time; throws PrometheusApiError on a bad expression or a non-vector. */
  query(expr: string): Promise<InstantVectorResult[]>;
  targets(): Promise<ActiveTarget[]>;
  rules(): Promise<RuleGroup[]>;
  /** SIGTERM, then SIGKILL after a grace; resolves once it has exited and its folder is gone. */
  stop(): Promise<void>;
}

export interface StartPrometheusOptions {
  /** How long to wait for /-/ready; default 30 s. */
  readyTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL on stop; default 5 s. */
  killAfterMs?: number;
}

/** A Prometheus HTTP API call failed or answered something other than what was asked for. */
export class PrometheusApiError extends Error {
  override readonly name = "PrometheusApiError";
  constructor(
    readonly path: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`GET ${path}: ${reason}`, options);
  }
}

/**
 * Starts Prometheus on `configYaml`, written into a fresh temp folder (so relative paths in it resolve
 * there: give rule files and file_sd files as absolute paths). Resolves once /-/ready answers 200.
 */
export async function startPrometheus(
  binary: string,
  configYaml: string,
  options: StartPrometheusOptions = {},
): Promise<PrometheusHandle> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const killAfterMs = options.killAfterMs ?? 5_000;
  const dir = tempDir("prometheus");
  const configFile = join(dir, "prometheus.yml");
  writeFileSync(configFile, configYaml);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let server: ChildServer;
  try {
    server = await startChildServer({
      binary,
      args: [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      isReady: () => isReady(url),
      readyWhat: `ready (${url}/-/ready answering 200)`,
      readyTimeoutMs,
      pollMs: POLL_INTERVAL_MS,
      killAfterMs,
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const stop = async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  return {
    url,
    async query(expr) {
      const path = `/api/v1/query?query=${encodeURIComponent(expr)}`;
      const data = await apiGet<{ resultType: string; result: InstantVectorResult[] }>(url, path);
      if (data.resultType !== "vector")
        throw new PrometheusApiError(path, `expected a vector, got a ${data.resultType}`);
      return data.result;
    },
    async targets() {
      return (await apiGet<{ activeTargets: ActiveTarget[] }>(url, "/api/v1/targets")).activeTargets;
    },
    async rules() {
      return (await apiGet<{ groups: RuleGroup[] }>(url, "/api/v1/rules")).groups;
    },
    stop,
  };
}

async function isReady(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    await response.arrayBuffer(); // frees the connection
    return response.status === 200;
  } catch {
    return false; // not listening yet
  }
}

/** GETs an API path and unwraps Prometheus's {status, data, error} envelope. */
async function apiGet<T>(url: string, path: string): Promise<T> {
  let body: { status?: string; data?: T; error?: string };
  try {
    const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    body = (await response.json()) as typeof body;
  } catch (error) {
    throw new PrometheusApiError(path, String(error), { cause: error });
  }
  if (body.status !== "success" || body.data === undefined)
    throw new PrometheusApiError(path, body.error ?? `status ${String(body.status)}`);
  return body.data;
}
