// DIR/metrics.jsonl: one JSON line per step and per eval, appended as they happen so a crash loses at
// most the line being written. On resume, lines past the checkpoint's step are dropped first, so the
// file never holds two histories.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import type { EvalRecord, MetricsSink, StepRecord } from "../shared/metrics.js";

export class MetricsFile implements MetricsSink {
  constructor(
    readonly path: string,
    resumeFromStep: number | undefined,
  ) {
    if (resumeFromStep === undefined || !existsSync(path)) {
      writeFileSync(path, "");
      return;
    }
    const kept = readFileSync(path, "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "" && (JSON.parse(line) as { step: number }).step <= resumeFromStep);
    writeFileSync(path, kept.map((line) => line + "\n").join(""));
  }

  step(record: StepRecord): void {
    appendFileSync(this.path, JSON.stringify({ type: "step", ...record }) + "\n");
  }

  eval(record: EvalRecord): void {
    appendFileSync(this.path, JSON.stringify({ type: "eval", ...record }) + "\n");
  }

  async close(): Promise<void> {}
}
