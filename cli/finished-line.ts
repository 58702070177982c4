// The last line a run prints: how far it got, and where its outputs are.
import { join } from "node:path";
import type { JobSummary } from "../coordinator/job.js";

export function finishedLine(summary: JobSummary, reportFile?: string): string {
  const out = summary.out_dir;
  const outputs = [
    ...(reportFile ? [`report ${reportFile}`] : []),
    `metrics ${join(out, "metrics.jsonl")}`,
    `checkpoint ${join(out, "checkpoint")}`,
  ];
  const stopped = summary.completed_steps < summary.steps ? " (stopped early)" : "";
  return `done: ${summary.completed_steps}/${summary.steps} steps${stopped} in ${summary.elapsed_s.toFixed(0)} s; ${outputs.join(", ")}`;
}
