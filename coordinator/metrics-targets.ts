// OUT/metrics-targets.json: a run's metrics endpoints in Prometheus's file_sd format, so the scrape config
// in deploy/prometheus/ finds a run by its directory, whatever ports it got.
import { mkdirSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";

/** The address a local Prometheus scrapes for a listen address (a wildcard is reached on loopback). */
export function scrapeHost(host: string): string {
  if (host === "0.0.0.0" || host === "::" || host === "") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/** Writes the file and returns its path; `ports`: the coordinator's (or train's) first, then the workers'. */
export function writeMetricsTargets(outDir: string, host: string, ports: readonly number[]): string {
  const file = join(outDir, "metrics-targets.json");
  mkdirSync(outDir, { recursive: true });
  const targets = ports.map((port) => `${scrapeHost(host)}:${port}`);
  writeFileSync(
    file,
    JSON.stringify([{ targets, labels: { imtrain_run: basename(resolve(outDir)) } }], null, 2) + "\n",
  );
  return file;
}
