// DIR/metrics.jsonl: one JSON line per step, eval and checkpoint, appended as they happen so a crash loses
// at most the line being written. On resume, lines past the checkpoint's step are dropped first, so the
// file never holds two histories (and a half-written last line from a crash is dropped with them).
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import type { CheckpointRecord, EvalRecord, MetricsSink, StepRecord } from "../shared/metrics/records.js";

function stepOf(line: string): number | undefined {
  try {
    const step = (JSON.parse(line) as { step?: unknown }).step;
    return typeof step === "number" ? step : undefined;
  } catch {
    return undefined;
  }
}

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
      .filter((line) => (stepOf(line) ?? Infinity) <= resumeFromStep);
    writeFileSync(path, kept.map((line) => line + "\n").join(""));
  }

  step(record: StepRecord): void {
    appendStepLine(this.path, record);
  }

  eval(record: EvalRecord): void {
    const { rank_eval_s: _, rank_ids: __, ...line } = record;
    this.append({ type: "eval", ...line });
  }

  checkpoint(record: CheckpointRecord): void {
    appendCheckpointLine(this.path, record);
  }

  async close(): Promise<void> {}

  private append(line: object): void {
    appendFileSync(this.path, JSON.stringify(line) + "\n");
  }
}

/** A step line; per-rank phases go to Prometheus, the file keeps the summary (phase_s, rank_compute_s). */
export function appendStepLine(path: string, record: StepRecord): void {
  const { rank_phase_s: _, ...line } = record;
  appendFileSync(path, JSON.stringify({ type: "step", ...line }) + "\n");
}

/** A checkpoint line, also for the one the coordinator salvages after the job loop has ended. */
export function appendCheckpointLine(path: string, record: CheckpointRecord): void {
  appendFileSync(
    path,
    JSON.stringify({ type: "checkpoint", step: record.step, checkpoint_s: record.checkpoint_s }) + "\n",
  );
}
