// Everything a run derives from its options before the first step, identically on the coordinator and on
// every worker: tokenizer, model source, encoded data, the eval sets and the step count. Each side reads
// the data files itself; the fingerprint lets the coordinator check they all read the same thing.
import { join } from "node:path";
import type { Example } from "../data/dataset.js";
import { analyzeDataset } from "../data/analyze.js";
import { fixedSubset, splitHeldOut } from "../data/eval-sets.js";
import { encodingOptions, loadDataTokenizer, loadEncoded, type Log } from "../data/load.js";
import type { Tokenizer } from "../data/tokenizer.js";
import { CheckpointError, OptionError, UserError } from "../errors.js";
import { isCheckpointDir, type TrainerState } from "../model/checkpoint.js";
import { newestWholeCheckpoint } from "../model/checkpoint-history.js";
import { resolveModel, type ModelSource } from "../model/source.js";
import type { TrainOptions } from "../options.js";
import { BatchPlan } from "./plan.js";
import { trajectoryDifferences, trajectoryOf, weightsFingerprint, type Trajectory } from "./trajectory.js";

export interface PreparedRun {
  readonly tokenizer: Tokenizer;
  readonly model: ModelSource;
  /** Set when resuming: the state to continue from. */
  readonly resumed: TrainerState | undefined;
  readonly train: readonly Example[];
  /** Held-out examples scored at eval (at most --eval-examples). */
  readonly heldOut: readonly Example[];
  /** A fixed training subset scored the same way. */
  readonly trainEval: readonly Example[];
  readonly plan: BatchPlan;
  readonly totalSteps: number;
  /** A hash of every encoded id and weight, to check all ranks read the same data. */
  readonly dataFingerprint: string;
  /** The frozen reference of a KL term: the starting model's weights, also when resuming. */
  readonly referenceWeights: Map<string, Float32Array> | undefined;
  /** What determines this run's trajectory, recorded in each checkpoint. */
  readonly trajectory: Trajectory;
  readonly dataStats: DataStats;
}

/** What the training file looks like once encoded: the paper's key ratio, and what truncation cost. */
export interface DataStats {
  /** Mean prompt tokens / mean output tokens over the training file's kept examples. */
  readonly instructionOutputRatio: number;
  /** Tokens cut from kept examples. */
  readonly truncatedTokens: number;
  /** Of those, output tokens (--truncation prompt cuts them only where template and output alone do not fit). */
  readonly truncatedOutputTokens: number;
  /** Examples dropped because truncation left no output token. */
  readonly droppedExamples: number;
}

/** A run directory's newest whole checkpoint (or the given checkpoint's), checked against its manifest. */
async function resumeCheckpointDir(dir: string, log: Log): Promise<string> {
  const looksLikeCheckpoint = await isCheckpointDir(dir);
  return newestWholeCheckpoint(looksLikeCheckpoint ? dir : join(dir, "checkpoint"), log);
}

/** FNV-1a over the examples' ids and weights. */
export function fingerprint(sets: readonly (readonly Example[])[]): string {
  let hash = 0x811c9dc5;
  const mix = (value: number) => {
    hash ^= value;
    hash = Math.imul(hash, 0x01000193);
  };
  for (const examples of sets) {
    mix(examples.length);
    for (const example of examples) {
      mix(example.index);
      for (const id of example.ids) mix(id);
      for (const bits of new Uint32Array(
        example.weights.buffer,
        example.weights.byteOffset,
        example.weights.length,
      ))
        mix(bits);
    }
  }
  return (hash >>> 0).toString(16).padStart(8, "0");
}

export async function prepareRun(options: TrainOptions, log: Log): Promise<PreparedRun> {
  const tokenizer = await loadDataTokenizer(options.data);
  const modelSpec = options.resumeDir ? await resumeCheckpointDir(options.resumeDir, log) : options.model;
  const model = await resolveModel(modelSpec, tokenizer, options.seed);
  const resumed = options.resumeDir ? model.checkpoint?.trainer : undefined;
  if (options.resumeDir && (resumed === undefined || model.checkpoint?.optimizer === undefined)) {
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
  const { config } = model;
  log(
    `model ${model.description}: ${config.layers} layers, d=${config.embedDim}, ${config.heads} heads, vocab ${config.vocabSize}`,
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
  if (resumed && resumed.step > totalSteps) {
    throw new OptionError(
      "steps",
      `${totalSteps} is fewer than the ${resumed.step} steps the resumed run completed`,
    );
  }
  const dataFingerprint = fingerprint([split.train, heldOut, trainEval]);
  // A resume rebuilds the KL reference from --model: the model the run started from, not the checkpoint.
  const referenceWeights =
    options.klWeight <= 0
      ? undefined
      : resumed
        ? (await resolveModel(options.model, tokenizer, options.seed)).weights()
        : model.weights();
  const trajectory = trajectoryOf(
    options,
    dataFingerprint,
    totalSteps,
    referenceWeights && weightsFingerprint(referenceWeights),
  );
  const recorded = resumed?.trajectory;
  const differences = recorded ? trajectoryDifferences(recorded, trajectory) : [];
  if (differences.length > 0)
    throw new UserError(
      `cannot resume from ${modelSpec}: its run was trained differently, and would not continue the same trajectory: ${differences.join("; ")}`,
    );
  return {
    tokenizer,
    model,
    resumed,
    referenceWeights,
    trajectory,
    train: split.train,
    heldOut,
    trainEval,
    plan,
    totalSteps,
    dataFingerprint,
    dataStats: {
      instructionOutputRatio: analyzeDataset(trainFile).instruction_output_ratio,
      truncatedTokens: trainFile.examples.reduce((sum, example) => sum + example.truncatedTokens, 0),
      truncatedOutputTokens: trainFile.examples.reduce(
        (sum, example) => sum + example.truncatedOutputTokens,
        0,
      ),
      droppedExamples: trainFile.dropped.length,
    },
  };
}
