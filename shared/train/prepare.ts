// Everything a run derives from its options before the first step, identically on the coordinator and on
// every worker: tokenizer, model source, encoded data, the eval sets and the step count. Each side reads
// the data files itself; the fingerprint lets the coordinator check they all read the same thing.
import { join } from "node:path";
import type { Example } from "../data/dataset.js";
import { analyzeDataset } from "../data/analyze.js";
import { fixedSubset, splitHeldOut } from "../data/eval-sets.js";
import { encodingOptions, loadDataTokenizer, loadEncoded, type Log } from "../data/load.js";
import type { Tokenizer } from "../data/tokenizer.js";
import { CheckpointError, OptionError } from "../errors.js";
import { isCheckpointDir, type TrainerState } from "../model/checkpoint.js";
import { resolveModel, type ModelSource } from "../model/source.js";
import type { TrainOptions } from "../options.js";
import { BatchPlan } from "./plan.js";

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
  readonly dataStats: DataStats;
}

/** What the training file looks like once encoded: the paper's key ratio, and what truncation cost. */
export interface DataStats {
  /** Mean prompt tokens / mean output tokens over the training file's kept examples. */
  readonly instructionOutputRatio: number;
  /** Tokens cut from kept examples. */
  readonly truncatedTokens: number;
  /** Examples dropped because truncation left no output token. */
  readonly droppedExamples: number;
}

async function resumeCheckpointDir(dir: string): Promise<string> {
  if (await isCheckpointDir(dir)) return dir;
  if (await isCheckpointDir(join(dir, "checkpoint"))) return join(dir, "checkpoint");
  throw new CheckpointError(
    dir,
    "not a checkpoint (no config.json + model.safetensors here or in checkpoint/)",
  );
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
  const modelSpec = options.resumeDir ? await resumeCheckpointDir(options.resumeDir) : options.model;
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
  return {
    tokenizer,
    model,
    resumed,
    train: split.train,
    heldOut,
    trainEval,
    plan,
    totalSteps,
    dataFingerprint: fingerprint([split.train, heldOut, trainEval]),
    dataStats: {
      instructionOutputRatio: analyzeDataset(trainFile).instruction_output_ratio,
      truncatedTokens: trainFile.examples.reduce((sum, example) => sum + example.truncatedTokens, 0),
      droppedExamples: trainFile.dropped.length,
    },
  };
}
