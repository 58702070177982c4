// A process's metrics, start to end: a registry, its build info and dropped-message counter, the health
// that /healthz reports, and the HTTP endpoint. Nothing at all when no --metrics-port was given.
import { setTimeout as sleep } from "node:timers/promises";
import type { Log } from "../data/load.js";
import { startMetricsEndpoint } from "./endpoint.js";
import { Health } from "./health.js";
import type { MetricsOptions } from "./options.js";
import { ProcessMetrics, type BuildInfo } from "./process-metrics.js";
import { createMetricsRegistry } from "./registry.js";
import type { Registry } from "prom-client";

export interface ServedMetrics {
  readonly registry: Registry;
  readonly process: ProcessMetrics;
  readonly health: Health;
  /** http://host:port */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function serveMetrics(
  options: MetricsOptions,
  job: string,
  info: BuildInfo,
  log: Log,
): Promise<ServedMetrics | undefined> {
  if (options.port === undefined) return undefined;
  const registry = createMetricsRegistry(job);
  const process = new ProcessMetrics(registry, info);
  const health = new Health();
  const endpoint = await startMetricsEndpoint(registry, health, options.host, options.port, log);
  log(`metrics: ${endpoint.url}/metrics (health: ${endpoint.url}/healthz)`);
  return {
    registry,
    process,
    health,
    url: endpoint.url,
    host: options.host,
    port: endpoint.port,
    close: async () => {
      if (options.lingerMs > 0) {
        log(`keeping /metrics up ${options.lingerMs / 1000} s for a final scrape (--metrics-linger-s)`);
        await sleep(options.lingerMs);
      }
      await endpoint.close();
      registry.clear();
    },
  };
}
