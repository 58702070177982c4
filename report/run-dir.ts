// One run directory as a report reads it: metrics.jsonl (required; it grows while the run runs) and
// summary.json (only once the run has ended).
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { UserError } from "../shared/errors.js";
import { readMetricsLog, type MetricsLog } from "./metrics-log.js";
import { readRunSummary, type RunSummary } from "./run-summary.js";

export interface Run {
  /** Absolute path. */
  readonly dir: string;
  readonly metrics: MetricsLog;
  /** Undefined while the run is running (or after it died before writing one). */
  readonly summary: RunSummary | undefined;
  /** When metrics.jsonl was last written. */
  readonly updatedAt: Date;
}

/** A RUN_DIR argument that is not a run directory. */
export class RunDirError extends UserError {
  override readonly name = "RunDirError";
  constructor(
    readonly dir: string,
    readonly reason: string,
  ) {
    super(`${dir}: ${reason}`);
  }
}

export function readRun(dir: string): Run {
  const stat = statSync(dir, { throwIfNoEntry: false });
  if (stat === undefined) throw new RunDirError(dir, "no such run directory");
  if (!stat.isDirectory()) throw new RunDirError(dir, "not a directory (give the run's --out directory)");
  const metricsFile = join(dir, "metrics.jsonl");
  if (!existsSync(metricsFile)) {
    throw new RunDirError(dir, "has no metrics.jsonl (not an imtrain run directory, or it has not started)");
  }
  const summaryFile = join(dir, "summary.json");
  return {
    dir: resolve(dir),
    metrics: readMetricsLog(metricsFile),
    summary: existsSync(summaryFile) ? readRunSummary(summaryFile) : undefined,
    updatedAt: statSync(metricsFile).mtime,
  };
}
