// `imtrain train`: the job in one process — one rank, no network. Sets up backend, tokenizer, model and
// data; runs the steps; evaluates; checkpoints; writes metrics.jsonl and summary.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { selectBackend } from "../shared/backend/select.js";
import { loadDataTokenizer, encodingOptions, loadEncoded, type Log } from "../shared/data/load.js";
import type { Example } from "../shared/data/dataset.js";
import { CheckpointError, OptionError } from "../shared/errors.js";
import type { EvalRecord, StepRecord } from "../shared/metrics.js";
import { isCheckpointDir, saveCheckpoint } from "../shared/model/checkpoint.js";
import { Gpt } from "../shared/model/gpt.js";
import { resolveModel } from "../shared/model/source.js";
import type { TrainOptions } from "../shared/options.js";
import { AdamW } from "../shared/train/adamw.js";
import { BatchPlan } from "../shared/train/plan.js";
import { meanOutputLoss, scoreExamples } from "../shared/train/score.js";
import { StepBufferLayout } from "../shared/train/step-buffer.js";
import { Rank } from "../worker/rank.js";
import { trainStep } from "../worker/train-step.js";
import { fixedSubset, splitHeldOut } from "./eval-sets.js";
import { MetricsFile } from "./metrics-file.js";
import { Progress } from "./progress.js";

export interface JobSummary {
  readonly steps: number;
  /** Steps completed; less than `steps` when the job was stopped early. */
  readonly completed_steps: number;
  readonly backend: string;
  readonly train_examples: number;
  readonly eval_examples: number;
  readonly final_train_loss: number;
  readonly final_train_output_loss: number;
  readonly final_eval: EvalRecord | undefined;
  readonly tokens_per_s: number;
  readonly elapsed_s: number;
  readonly out_dir: string;
}

async function resumeCheckpointDir(dir: string): Promise<string> {
  if (await isCheckpointDir(dir)) return dir;
  if (await isCheckpointDir(join(dir, "checkpoint"))) return join(dir, "checkpoint");
  throw new CheckpointError(
    dir,
    "not a checkpoint (no config.json + model.safetensors here or in checkpoint/)",
  );
}

export interface JobControl {
  /** Aborting stops the job after the step in progress, with a checkpoint (SIGTERM, preemption). */
  readonly signal?: AbortSignal;
  readonly onStep?: (record: StepRecord) => void;
}

export async function runTrainJob(
  options: TrainOptions,
  log: Log,
  control: JobControl = {},
): Promise<JobSummary> {
  const started = performance.now();
  const backend = await selectBackend(options.backend);
  log(`backend ${backend.name}${backend.skipped.length ? ` (skipped: ${backend.skipped.join("; ")})` : ""}`);
  const tokenizer = await loadDataTokenizer(options.data);
  const modelSpec = options.resumeDir ? await resumeCheckpointDir(options.resumeDir) : options.model;
  const source = await resolveModel(modelSpec, tokenizer, options.seed);
  const resumed = options.resumeDir ? source.checkpoint?.trainer : undefined;
  if (options.resumeDir && (resumed === undefined || source.checkpoint?.optimizer === undefined)) {
    throw new CheckpointError(
      modelSpec,
      "has no optimizer/trainer state to resume from (use it as --model instead)",
    );
  }
  if (resumed && resumed.seed !== options.seed) {
    throw new OptionError(
      "seed",
      `${options.seed} differs from the resumed run's ${resumed.seed}; the data order would change`,
    );
  }
  const { config } = source;
  log(
    `model ${source.description}: ${config.layers} layers, d=${config.embedDim}, ${config.heads} heads, vocab ${config.vocabSize}`,
  );

  const encoding = encodingOptions(options.data, config.maxPositions);
  const trainFile = loadEncoded(options.data.dataFile, options.data, tokenizer, encoding, log);
  const split = options.evalDataFile
    ? {
        train: trainFile.examples,
        heldOut: loadEncoded(options.evalDataFile, options.data, tokenizer, encoding, log).examples,
      }
    : splitHeldOut(trainFile, options.evalFraction, options.seed);
  const heldOut = fixedSubset(split.heldOut, options.evalExamples, options.seed);
  const trainEval = fixedSubset(split.train, Math.max(1, heldOut.length), options.seed);

  const plan = new BatchPlan(options.seed, split.train.length, options.batchSize);
  const totalSteps = options.steps ?? plan.stepsForEpochs(options.epochs ?? 1);
  const schedule = { ...options, totalSteps };
  const model = new Gpt(config, source.weights);
  const reference = options.klWeight > 0 ? new Gpt(config, source.weights, false) : undefined;
  const optimizer = new AdamW(model.params, options);
  const startStep = resumed?.step ?? 0;
  if (resumed && source.checkpoint?.optimizer) optimizer.loadState(source.checkpoint.optimizer, startStep);
  const layout = new StepBufferLayout(new Map([...model.params].map(([name, p]) => [name, p.shape])));
  const rank = new Rank(options, schedule, model, reference, optimizer, layout, split.train, tokenizer.eosId);

  mkdirSync(options.outDir, { recursive: true });
  const metrics = new MetricsFile(join(options.outDir, "metrics.jsonl"), resumed?.step);
  const progress = new Progress(totalSteps);
  if (startStep > 0) log(`resuming at step ${startStep} of ${totalSteps}`);

  const evaluate = (step: number): EvalRecord => {
    const score = (examples: readonly Example[]) =>
      meanOutputLoss(scoreExamples(model, examples, options.microBatchSize, tokenizer.eosId));
    const evalLoss = heldOut.length > 0 ? score(heldOut) : NaN;
    const trainLoss = score(trainEval);
    const record = {
      step,
      eval_output_loss: evalLoss,
      train_eval_output_loss: trainLoss,
      overfitting_gap: evalLoss - trainLoss,
    };
    metrics.eval(record);
    progress.note(
      `eval @${step}: held-out output loss ${evalLoss.toFixed(4)}, train ${trainLoss.toFixed(4)}, gap ${record.overfitting_gap.toFixed(4)}`,
    );
    return record;
  };
  const checkpoint = (step: number) =>
    saveCheckpoint(join(options.outDir, "checkpoint"), {
      config,
      weights: model.snapshot(),
      tokenizer: tokenizer.name,
      optimizer: optimizer.state(),
      trainer: { step, seed: options.seed, tokenizer: tokenizer.name },
    });

  let last: StepRecord | undefined;
  let lastEval: EvalRecord | undefined;
  let tokensTrained = 0;
  let trainingSeconds = 0;
  let completed = startStep;
  for (let step = startStep; step < totalSteps; step++) {
    const stepStarted = performance.now();
    const report = await trainStep(rank, step, plan.globalBatch(step), async (buffer) => buffer);
    const seconds = (performance.now() - stepStarted) / 1000;
    tokensTrained += report.tokens;
    trainingSeconds += seconds;
    const done = step + 1;
    last = {
      step: done,
      lr: report.lr,
      train_loss: report.trainLoss,
      train_output_loss: report.trainOutputLoss,
      tokens: report.tokens,
      loss_tokens: report.lossTokens,
      grad_norm: report.gradNorm,
      tokens_per_s: report.tokens / seconds,
    };
    metrics.step(last);
    progress.update(
      done,
      `loss ${last.train_loss.toFixed(4)} out ${last.train_output_loss.toFixed(4)} ${Math.round(last.tokens_per_s)} tok/s`,
    );
    control.onStep?.(last);
    completed = done;
    const isLast = done === totalSteps;
    const stopping = control.signal?.aborted === true && !isLast;
    if (isLast || (options.evalEverySteps > 0 && done % options.evalEverySteps === 0)) {
      lastEval = evaluate(done);
    }
    if (
      isLast ||
      stopping ||
      (options.checkpointEverySteps > 0 && done % options.checkpointEverySteps === 0)
    ) {
      await checkpoint(done);
    }
    if (stopping) {
      progress.note(`stopped after step ${done}; checkpoint saved: continue with --resume ${options.outDir}`);
      break;
    }
  }
  await metrics.close();
  const summary: JobSummary = {
    steps: totalSteps,
    completed_steps: completed,
    backend: backend.name,
    train_examples: split.train.length,
    eval_examples: heldOut.length,
    final_train_loss: last?.train_loss ?? NaN,
    final_train_output_loss: last?.train_output_loss ?? NaN,
    final_eval: lastEval,
    tokens_per_s: tokensTrained / Math.max(1e-9, trainingSeconds),
    elapsed_s: (performance.now() - started) / 1000,
    out_dir: options.outDir,
  };
  writeFileSync(
    join(options.outDir, "summary.json"),
    JSON.stringify({ ...summary, options }, null, 2) + "\n",
  );
  model.dispose();
  reference?.dispose();
  return summary;
}
