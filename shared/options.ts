// Options: the raw flags (from the CLI or a YAML/JSON config) compiled once into validated options with
// units in their names. Nothing after start-up reads flags or the environment.
import { OptionError } from "./errors.js";
import type { BackendName } from "./backend/select.js";
import { BACKEND_NAMES } from "./backend/select.js";
import { TRUNCATION_MODES, type LossWeighting, type Truncation } from "./data/encode.js";
import { DATA_FORMATS, type DataFormat } from "./data/formats.js";
import { TEMPLATE_NAMES, type TemplateName } from "./data/template.js";
import { LOSS_REDUCTIONS, type LossReduction } from "./train/loss.js";
import { LR_SCHEDULES, type LrSchedule } from "./train/schedule.js";

/** Flags shared by every command that reads data (train, masks, analyze, score). */
export interface DataFlags {
  data: string;
  format: string;
  template: string;
  tokenizer: string;
  eosToken?: string | undefined;
  lossMode?: string | undefined;
  promptLossWeight?: number | undefined;
  templateLossWeight: number;
  lastTurnOnly: boolean;
  contextLength?: number | undefined;
  truncation?: string | undefined;
  dropEmptyOutputs: boolean;
}

export interface DataOptions {
  readonly dataFile: string;
  readonly format: DataFormat | "auto";
  readonly template: TemplateName;
  readonly tokenizer: string;
  readonly eosToken: string | undefined;
  readonly weighting: LossWeighting;
  readonly lastTurnOnly: boolean;
  /** Cap on sequence length in tokens; undefined = the model's maximum. */
  readonly contextLength: number | undefined;
  readonly truncation: Truncation;
  readonly dropEmptyOutputs: boolean;
}

export interface TrainFlags extends DataFlags {
  evalData?: string | undefined;
  evalFraction: number;
  evalExamples: number;
  model: string;
  backend: string;
  resume?: string | undefined;
  steps?: number | undefined;
  epochs?: number | undefined;
  batchSize: number;
  microBatchSize?: number | undefined;
  lr: number;
  warmupSteps: number;
  schedule: string;
  minLrRatio: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  adamEpsilon: number;
  clipGradNorm: number;
  lossReduction: string;
  neftuneAlpha: number;
  klWeight: number;
  seed: number;
  evalEvery: number;
  checkpointEvery: number;
  checkpointEveryMinutes: number;
  keepCheckpoints?: number;
  /** The run directory; the CLI fills it in (a fresh default, or --resume's) before compiling. */
  out?: string | undefined;
}

export interface TrainOptions {
  readonly data: DataOptions;
  readonly evalDataFile: string | undefined;
  /** Fraction of the training file held out when no eval file is given. */
  readonly evalFraction: number;
  /** Most examples scored per eval set (held-out and the fixed training subset). */
  readonly evalExamples: number;
  readonly model: string;
  readonly backend: BackendName;
  readonly resumeDir: string | undefined;
  /** Exactly one of steps/epochs is set; the job resolves epochs to steps once the data is known. */
  readonly steps: number | undefined;
  readonly epochs: number | undefined;
  /** Examples per optimizer step, over all ranks. */
  readonly batchSize: number;
  /** Examples per forward/backward pass on one rank. */
  readonly microBatchSize: number;
  readonly lr: number;
  readonly lrWarmupSteps: number;
  readonly lrSchedule: LrSchedule;
  readonly minLrRatio: number;
  readonly weightDecay: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly adamEpsilon: number;
  /** 0 disables clipping. */
  readonly clipGradNorm: number;
  readonly lossReduction: LossReduction;
  readonly neftuneAlpha: number;
  readonly klWeight: number;
  readonly seed: number;
  /** 0 = eval only at the end. */
  readonly evalEverySteps: number;
  /** 0 = checkpoint only at the end. */
  readonly checkpointEverySteps: number;
  /** Also checkpoint when this long has passed since the last one (0 = no time schedule). */
  readonly checkpointEveryMs: number;
  /** How many checkpoints the run keeps: the newest, and older ones to fall back on if it is damaged. */
  readonly keepCheckpoints: number;
  readonly outDir: string;
}

export function oneOf<T extends string>(option: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new OptionError(option, `"${value}" is not one of ${allowed.join(", ")}`);
  }
  return value as T;
}

/** `value` within [min, max]; the CLI has already refused what is not a number at all. */
export function inRange(option: string, value: number, min: number, max = Infinity, integer = false): number {
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    const what = integer ? "an integer" : "a number";
    throw new OptionError(option, `must be ${what} in [${min}, ${max}] (got ${String(value)})`);
  }
  return value;
}

/** `value` within (0, max]: for rates and scales where 0 would silently do nothing. */
export function positive(option: string, value: number, max = Infinity): number {
  if (!Number.isFinite(value) || value <= 0 || value > max) {
    throw new OptionError(option, `must be a number in (0, ${max}] (got ${String(value)})`);
  }
  return value;
}

/** λ from --loss-mode (it = 0, im = 1) or --prompt-loss-weight; both given must agree. */
function promptLossWeight(flags: DataFlags): number {
  const fromMode =
    flags.lossMode === undefined
      ? undefined
      : oneOf("loss-mode", flags.lossMode, ["it", "im"]) === "im"
        ? 1
        : 0;
  const explicit = flags.promptLossWeight;
  if (explicit !== undefined && fromMode !== undefined && explicit !== fromMode) {
    throw new OptionError("prompt-loss-weight", `${explicit} contradicts --loss-mode ${flags.lossMode}`);
  }
  return inRange("prompt-loss-weight", explicit ?? fromMode ?? 0, 0, 1);
}

export function compileDataOptions(flags: DataFlags): DataOptions {
  if (!flags.data) throw new OptionError("data", "a data file is required");
  return {
    dataFile: flags.data,
    format: oneOf("format", flags.format, ["auto", ...DATA_FORMATS]),
    template: oneOf("template", flags.template, TEMPLATE_NAMES),
    tokenizer: flags.tokenizer,
    eosToken: flags.eosToken,
    weighting: {
      promptLossWeight: promptLossWeight(flags),
      templateLossWeight: inRange("template-loss-weight", flags.templateLossWeight, 0, 1),
    },
    lastTurnOnly: flags.lastTurnOnly,
    contextLength:
      flags.contextLength === undefined
        ? undefined
        : inRange("context-length", flags.contextLength, 2, 1 << 20, true),
    truncation: oneOf("truncation", flags.truncation ?? "prompt", TRUNCATION_MODES),
    dropEmptyOutputs: flags.dropEmptyOutputs,
  };
}

export function compileTrainOptions(flags: TrainFlags): TrainOptions {
  if (!flags.out) throw new OptionError("out", "a run directory is required");
  if (flags.steps !== undefined && flags.epochs !== undefined) {
    throw new OptionError("steps", "give --steps or --epochs, not both");
  }
  const batchSize = inRange("batch-size", flags.batchSize, 1, 1 << 20, true);
  const microBatchSize = inRange("micro-batch-size", flags.microBatchSize ?? batchSize, 1, 1 << 20, true);
  // A silent clamp would hide a typo in either flag; say which two disagree.
  if (microBatchSize > batchSize) {
    throw new OptionError(
      "micro-batch-size",
      `${microBatchSize} is larger than --batch-size ${batchSize} (a micro-batch is part of one step's batch)`,
    );
  }
  return {
    data: compileDataOptions(flags),
    evalDataFile: flags.evalData,
    evalFraction: inRange("eval-fraction", flags.evalFraction, 0, 0.9),
    evalExamples: inRange("eval-examples", flags.evalExamples, 1, 1 << 30, true),
    model: flags.model,
    backend: oneOf("backend", flags.backend, BACKEND_NAMES),
    resumeDir: flags.resume,
    steps:
      flags.steps === undefined
        ? flags.epochs === undefined
          ? 100
          : undefined
        : inRange("steps", flags.steps, 1, 1e9, true),
    epochs: flags.epochs === undefined ? undefined : inRange("epochs", flags.epochs, 1e-6, 1e6),
    batchSize,
    microBatchSize,
    lr: positive("lr", flags.lr, 10),
    lrWarmupSteps: inRange("warmup-steps", flags.warmupSteps, 0, 1e9, true),
    lrSchedule: oneOf("schedule", flags.schedule, LR_SCHEDULES),
    minLrRatio: inRange("min-lr-ratio", flags.minLrRatio, 0, 1),
    weightDecay: inRange("weight-decay", flags.weightDecay, 0, 10),
    beta1: inRange("beta1", flags.beta1, 0, 0.999999),
    beta2: inRange("beta2", flags.beta2, 0, 0.999999999),
    adamEpsilon: inRange("adam-epsilon", flags.adamEpsilon, 0, 1),
    clipGradNorm: inRange("clip-grad-norm", flags.clipGradNorm, 0),
    lossReduction: oneOf("loss-reduction", flags.lossReduction, LOSS_REDUCTIONS),
    neftuneAlpha: inRange("neftune-alpha", flags.neftuneAlpha, 0),
    klWeight: inRange("kl-weight", flags.klWeight, 0),
    seed: inRange("seed", flags.seed, 0, 2 ** 31 - 1, true),
    evalEverySteps: inRange("eval-every", flags.evalEvery, 0, 1e9, true),
    checkpointEverySteps: inRange("checkpoint-every", flags.checkpointEvery, 0, 1e9, true),
    keepCheckpoints: inRange("keep-checkpoints", flags.keepCheckpoints ?? 2, 1, 1000, true),
    checkpointEveryMs:
      inRange("checkpoint-every-minutes", flags.checkpointEveryMinutes ?? 10, 0, 1e6) * 60_000,
    outDir: flags.out,
  };
}
