// What the job loop records, built from what the ranks return: a step's record (losses, throughput, FLOPs,
// where each rank's time went), an eval's record, the facts metrics need up front, and the run's summary.
import { matmulParameterCount, parameterCount, trainingFlops } from "../shared/metrics/flops.js";
import type { EvalRecord, StepRecord } from "../shared/metrics/records.js";
import type { TrainOptions } from "../shared/options.js";
import type { PreparedRun } from "../shared/train/prepare.js";
import type { JobFacts } from "./job-metrics.js";
import type { GroupEval, GroupStep } from "./rank-group.js";
import { stepPhases } from "./step-phases.js";

export interface JobSummary {
  readonly steps: number;
  /** Steps completed; less than `steps` when the job was stopped early. */
  readonly completed_steps: number;
  readonly world_size: number;
  /** The backend that ran: a distributed job's workers' (one, unless --allow-mixed-backends let several, joined by ","). */
  readonly backend: string;
  /** cpu, gpu:K, gpu:software (a distributed job's distinct devices, joined by ","). */
  readonly device: string;
  /** webgpu's adapter (name and driver); "" elsewhere. */
  readonly adapter: string;
  /** A distributed job's ranks at its end, each with what its `ready` said it computes on. */
  readonly ranks?: readonly RankCompute[];
  readonly train_examples: number;
  readonly eval_examples: number;
  readonly final_train_loss: number;
  readonly final_train_output_loss: number;
  readonly final_eval: EvalRecord | undefined;
  readonly tokens_per_s: number;
  readonly elapsed_s: number;
  readonly out_dir: string;
  /** λ, the loss weight on instruction tokens. */
  readonly prompt_loss_weight: number;
  readonly template_loss_weight: number;
  readonly instruction_output_ratio: number;
  /** --truncation, and what it cut from the training file: prompt (and template) and output tokens of the
   * kept examples, and the examples dropped with no output token left. */
  readonly truncation: string;
  readonly truncated_prompt_tokens: number;
  readonly truncated_output_tokens: number;
  readonly dropped_examples: number;
  readonly model_parameters: number;
}

/** `step` is 1-based (steps done); `seconds` the step's wall time as the job saw it. */
export function stepRecord(run: PreparedRun, step: number, group: GroupStep, seconds: number): StepRecord {
  const { result } = group;
  const config = run.model.config;
  const meanLength = result.tokens / Math.max(1, result.examples);
  return {
    step,
    lr: result.lr,
    train_loss: result.trainLoss,
    train_output_loss: result.trainOutputLoss,
    tokens: result.tokens,
    loss_tokens: result.lossTokens,
    examples: result.examples,
    grad_norm: result.gradNorm,
    tokens_per_s: result.tokens / seconds,
    step_s: seconds,
    flops: trainingFlops(config, matmulParameterCount(config), result.tokens, meanLength),
    ...stepPhases(group.rankPhases),
    ...(group.ranks ? { rank_ids: group.ranks } : {}),
    ...(group.memory ? { tensors: group.memory.tensors, tensor_bytes: group.memory.bytes } : {}),
  };
}

/** Output-token losses of held-out data and of the fixed training subset; NaN without held-out data. */
export function evalRecord(step: number, sums: GroupEval, seconds: number): EvalRecord {
  const heldOut = sums.heldOut[1] > 0 ? sums.heldOut[0] / sums.heldOut[1] : NaN;
  const train = sums.train[0] / Math.max(1, sums.train[1]);
  return {
    step,
    eval_output_loss: heldOut,
    train_eval_output_loss: train,
    overfitting_gap: heldOut - train,
    eval_s: seconds,
    rank_eval_s: sums.rankSeconds,
    ...(sums.ranks ? { rank_ids: sums.ranks } : {}),
  };
}

export function jobFacts(options: TrainOptions, run: PreparedRun, worldSize: number): JobFacts {
  return {
    plannedSteps: run.totalSteps,
    completedSteps: run.resumed?.step ?? 0,
    workersExpected: worldSize,
    promptLossWeight: options.data.weighting.promptLossWeight,
    templateLossWeight: options.data.weighting.templateLossWeight,
    instructionOutputRatio: run.dataStats.instructionOutputRatio,
    truncatedTokens: run.dataStats.truncatedTokens,
    droppedExamples: run.dataStats.droppedExamples,
    checkpointEverySteps: options.checkpointEverySteps,
    checkpointEverySeconds: options.checkpointEveryMs / 1000,
    heldOutExamples: run.heldOut.length,
  };
}

/** What the loop accumulates for the summary. */
export interface RunTally {
  readonly completedSteps: number;
  readonly last: StepRecord | undefined;
  readonly lastEval: EvalRecord | undefined;
  readonly tokens: number;
  readonly trainingSeconds: number;
  readonly elapsedSeconds: number;
}

/** What one worker computes on, as it reported when it joined. */
export interface RankCompute {
  readonly rank: number;
  readonly name: string;
  readonly backend: string;
  readonly device: string;
  readonly adapter: string;
}

/** What a job ran on, as its summary records it. */
export interface ComputeSummary {
  readonly backend: string;
  readonly device: string;
  readonly adapter: string;
  readonly ranks?: readonly RankCompute[];
}

/** The ranks' computes folded into one summary: each field's distinct values, in rank order. */
export function summarizeRankComputes(ranks: readonly RankCompute[]): ComputeSummary {
  const distinct = (field: "backend" | "device" | "adapter", separator: string) =>
    [...new Set(ranks.map((rank) => rank[field]).filter(Boolean))].join(separator);
  return {
    backend: distinct("backend", ","),
    device: distinct("device", ","),
    adapter: distinct("adapter", "; "),
    ranks,
  };
}

export function jobSummary(
  options: TrainOptions,
  run: PreparedRun,
  worldSize: number,
  compute: ComputeSummary,
  tally: RunTally,
): JobSummary {
  return {
    steps: run.totalSteps,
    completed_steps: tally.completedSteps,
    world_size: worldSize,
    backend: compute.backend,
    device: compute.device,
    adapter: compute.adapter,
    ...(compute.ranks ? { ranks: compute.ranks } : {}),
    train_examples: run.train.length,
    eval_examples: run.heldOut.length,
    final_train_loss: tally.last?.train_loss ?? NaN,
    final_train_output_loss: tally.last?.train_output_loss ?? NaN,
    final_eval: tally.lastEval && withoutRankDetail(tally.lastEval),
    tokens_per_s: tally.tokens / Math.max(1e-9, tally.trainingSeconds),
    elapsed_s: tally.elapsedSeconds,
    out_dir: options.outDir,
    prompt_loss_weight: options.data.weighting.promptLossWeight,
    template_loss_weight: options.data.weighting.templateLossWeight,
    instruction_output_ratio: run.dataStats.instructionOutputRatio,
    truncation: options.data.truncation,
    truncated_prompt_tokens: run.dataStats.truncatedTokens - run.dataStats.truncatedOutputTokens,
    truncated_output_tokens: run.dataStats.truncatedOutputTokens,
    dropped_examples: run.dataStats.droppedExamples,
    model_parameters: parameterCount(run.model.config),
  };
}

/** The summary keeps the job's view of an eval; per-rank seconds went to Prometheus. */
function withoutRankDetail(record: EvalRecord): EvalRecord {
  const { rank_eval_s: _, rank_ids: __, ...rest } = record;
  return rest;
}
