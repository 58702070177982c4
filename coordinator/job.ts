// The job loop, the same for one process and for N workers: for each step, plan the global batch, split
// it among the ranks, step, record; evaluate and checkpoint on schedule; write metrics and the summary.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { Log } from "../shared/data/load.js";
import { parameterCount, trainingFlops } from "../shared/metrics/flops.js";
import type { EvalRecord, MetricsSink, StepRecord } from "../shared/metrics/records.js";
import type { TrainOptions } from "../shared/options.js";
import { assignToRanks, splitEvenly } from "../shared/train/plan.js";
import type { PreparedRun } from "../shared/train/prepare.js";
import type { JobMetrics } from "./job-metrics.js";
import { MetricsFile } from "./metrics-file.js";
import { Progress } from "./progress.js";
import type { RankGroup } from "./rank-group.js";
import { stepPhases } from "./step-phases.js";

export interface JobSummary {
  readonly steps: number;
  /** Steps completed; less than `steps` when the job was stopped early. */
  readonly completed_steps: number;
  readonly world_size: number;
  readonly backend: string;
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
  readonly model_parameters: number;
}

export interface JobControl {
  /** Aborting stops the job after the step in progress, with a checkpoint (SIGTERM, preemption). */
  readonly signal?: AbortSignal;
  readonly onStep?: (record: StepRecord) => void;
  /** Prometheus, beside metrics.jsonl. */
  readonly metrics?: JobMetrics;
  /** Compare rank checksums every K steps (and at the end); 0 = only at the end. */
  readonly checksumEverySteps?: number;
}

export async function runJob(
  options: TrainOptions,
  run: PreparedRun,
  ranks: RankGroup,
  backend: string,
  log: Log,
  control: JobControl = {},
): Promise<JobSummary> {
  const started = performance.now();
  const { totalSteps, plan } = run;
  const startStep = run.resumed?.step ?? 0;
  const parameters = parameterCount(run.model.config);
  mkdirSync(options.outDir, { recursive: true });
  const sinks: MetricsSink[] = [new MetricsFile(join(options.outDir, "metrics.jsonl"), run.resumed?.step)];
  if (control.metrics) sinks.push(control.metrics);
  control.metrics?.start({
    plannedSteps: totalSteps,
    completedSteps: startStep,
    workersExpected: ranks.worldSize,
    promptLossWeight: options.data.weighting.promptLossWeight,
    templateLossWeight: options.data.weighting.templateLossWeight,
    instructionOutputRatio: run.dataStats.instructionOutputRatio,
    truncatedTokens: run.dataStats.truncatedTokens,
    droppedExamples: run.dataStats.droppedExamples,
    checkpointEverySteps: options.checkpointEverySteps,
  });
  const progress = new Progress(totalSteps, startStep);
  if (startStep > 0) log(`resuming at step ${startStep} of ${totalSteps}`);
  const lengthOf = (position: number) => run.train[position]?.ids.length ?? 0;

  const evaluate = async (step: number): Promise<EvalRecord> => {
    const evalStarted = performance.now();
    const sums = await ranks.evaluate(
      splitEvenly(run.heldOut.length, ranks.worldSize),
      splitEvenly(run.trainEval.length, ranks.worldSize),
    );
    const evalLoss = sums.heldOut[1] > 0 ? sums.heldOut[0] / sums.heldOut[1] : NaN;
    const trainLoss = sums.train[0] / Math.max(1, sums.train[1]);
    const record: EvalRecord = {
      step,
      eval_output_loss: evalLoss,
      train_eval_output_loss: trainLoss,
      overfitting_gap: evalLoss - trainLoss,
      eval_s: (performance.now() - evalStarted) / 1000,
      rank_eval_s: sums.rankSeconds,
    };
    for (const sink of sinks) sink.eval(record);
    progress.eval(record);
    return record;
  };
  const checkpointDir = join(options.outDir, "checkpoint");
  const checkpoint = async (step: number) => {
    const saved = await ranks.checkpoint(checkpointDir, options.seed);
    for (const sink of sinks) sink.checkpoint({ step, checkpoint_s: saved.seconds, rank: saved.rank });
  };
  const checksumEvery = control.checksumEverySteps ?? 0;

  let last: StepRecord | undefined;
  let lastEval: EvalRecord | undefined;
  let tokensTrained = 0;
  let trainingSeconds = 0;
  let completed = startStep;
  try {
    for (let step = startStep; step < totalSteps; step++) {
      const stepStarted = performance.now();
      const done = step + 1;
      const isLast = done === totalSteps;
      const assignments = assignToRanks(plan.globalBatch(step), lengthOf, ranks.worldSize);
      const compareChecksums = isLast || (checksumEvery > 0 && done % checksumEvery === 0);
      const { result, rankPhases } = await ranks.step(step, assignments, compareChecksums);
      const seconds = (performance.now() - stepStarted) / 1000;
      tokensTrained += result.tokens;
      trainingSeconds += seconds;
      const phases = stepPhases(rankPhases);
      last = {
        step: done,
        lr: result.lr,
        train_loss: result.trainLoss,
        train_output_loss: result.trainOutputLoss,
        tokens: result.tokens,
        loss_tokens: result.lossTokens,
        examples: result.examples,
        grad_norm: result.gradNorm,
        tokens_per_s: result.tokens / seconds,
        step_s: seconds,
        flops: trainingFlops(
          run.model.config,
          parameters,
          result.tokens,
          result.tokens / Math.max(1, result.examples),
        ),
        ...phases,
      };
      for (const sink of sinks) sink.step(last);
      progress.step(last);
      control.onStep?.(last);
      completed = done;
      const stopping = control.signal?.aborted === true && !isLast;
      if (isLast || (options.evalEverySteps > 0 && done % options.evalEverySteps === 0))
        lastEval = await evaluate(done);
      if (
        isLast ||
        stopping ||
        (options.checkpointEverySteps > 0 && done % options.checkpointEverySteps === 0)
      )
        await checkpoint(done);
      if (stopping) {
        progress.note(
          `stopped after step ${done}; checkpoint saved: continue with --resume ${options.outDir}`,
        );
        break;
      }
      // A step's compute is synchronous: let the event loop run between steps, so signals are handled and
      // /metrics is served while `train` runs.
      await nextTurn();
    }
  } finally {
    progress.close();
    for (const sink of sinks) await sink.close();
  }
  const summary: JobSummary = {
    steps: totalSteps,
    completed_steps: completed,
    world_size: ranks.worldSize,
    backend,
    train_examples: run.train.length,
    eval_examples: run.heldOut.length,
    final_train_loss: last?.train_loss ?? NaN,
    final_train_output_loss: last?.train_output_loss ?? NaN,
    final_eval: lastEval === undefined ? undefined : withoutRankDetail(lastEval),
    tokens_per_s: tokensTrained / Math.max(1e-9, trainingSeconds),
    elapsed_s: (performance.now() - started) / 1000,
    out_dir: options.outDir,
    prompt_loss_weight: options.data.weighting.promptLossWeight,
    template_loss_weight: options.data.weighting.templateLossWeight,
    instruction_output_ratio: run.dataStats.instructionOutputRatio,
    model_parameters: parameters,
  };
  writeFileSync(
    join(options.outDir, "summary.json"),
    JSON.stringify({ ...summary, options }, null, 2) + "\n",
  );
  return summary;
}

function withoutRankDetail(record: EvalRecord): EvalRecord {
  const { rank_eval_s: _, ...rest } = record;
  return rest;
}
