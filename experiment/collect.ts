// One finished run's folder, read into its RunResult: summary.json (written last by train), metrics.jsonl's
// evals (the curves), and bleu.json (written by the experiment after generating).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { JobSummary } from "../coordinator/job-records.js";
import { readMetricsLog } from "../report/metrics-log.js";
import type { BleuScore } from "../shared/eval/bleu.js";
import type { CurvePoint, RunParams, RunResult } from "./results.js";

export interface BleuRecord extends BleuScore {
  readonly examples: number;
  /** The run's wall time, training and scoring, as bleu.json records it. */
  readonly elapsed_s: number;
}

export const SUMMARY_FILE = "summary.json";
export const BLEU_FILE = "bleu.json";

/** Whether the run finished: trained to the end and scored (a crash between leaves it to redo). */
export function isFinished(runDir: string): boolean {
  return existsSync(join(runDir, SUMMARY_FILE)) && existsSync(join(runDir, BLEU_FILE));
}

export function readRunResult(id: string, params: RunParams, runDir: string): RunResult {
  const summary = JSON.parse(readFileSync(join(runDir, SUMMARY_FILE), "utf8")) as JobSummary;
  const bleu = JSON.parse(readFileSync(join(runDir, BLEU_FILE), "utf8")) as BleuRecord;
  const curve: CurvePoint[] = readMetricsLog(join(runDir, "metrics.jsonl"))
    .evals.filter((e) => e.eval_output_loss != null && e.train_eval_output_loss != null)
    .map((e) => ({
      step: e.step,
      trainOutputLoss: e.train_eval_output_loss ?? NaN,
      heldOutOutputLoss: e.eval_output_loss ?? NaN,
    }));
  const last = curve.at(-1);
  return {
    id,
    params,
    status: "done",
    instructionOutputRatio: summary.instruction_output_ratio,
    finalTrainOutputLoss: last?.trainOutputLoss ?? NaN,
    finalHeldOutOutputLoss: last?.heldOutOutputLoss ?? NaN,
    bleu: bleu.score,
    bleuExamples: bleu.examples,
    curve,
    elapsedSeconds: bleu.elapsed_s,
  };
}

export function failedRun(id: string, params: RunParams, error: string, elapsedSeconds: number): RunResult {
  return {
    id,
    params,
    status: "failed",
    error,
    instructionOutputRatio: NaN,
    finalTrainOutputLoss: NaN,
    finalHeldOutOutputLoss: NaN,
    bleu: NaN,
    bleuExamples: 0,
    curve: [],
    elapsedSeconds,
  };
}
