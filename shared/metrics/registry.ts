// One prom-client registry per process: Node's default process metrics (RSS, heap, event-loop lag, GC)
// plus whatever imtrain registers, every series labelled with the imtrain job. The `job` label is a
// metric label: scrape with honor_labels so it wins over the scrape job's own (deploy/prometheus/).
import { Registry, collectDefaultMetrics } from "prom-client";

/** Seconds from a millisecond to ten minutes: a tiny model's step phase to a GPT-2 checkpoint. */
export const SECONDS_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 150, 300, 600,
];

/**
 * prom-client exports these as gauges named like counters, which `promtool check metrics` rejects (and a
 * counter-aware query would misread); open handles are not what a trainer's user watches anyway.
 */
const MISNAMED_DEFAULTS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

export function createMetricsRegistry(job: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ job });
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
  return registry;
}
