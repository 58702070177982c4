// results.json: what an experiment measured, run by run, and what the report and `analyze` read back. Plain
// JSON so a notebook can read it too. Bump RESULTS_VERSION when a field changes meaning.

export const RESULTS_VERSION = 1;

/** One point of the grid: the trainer's knobs the paper varies, and the seed. */
export interface RunParams {
  readonly dataset: string;
  /** Training examples (a nested, seeded subset of the data set's training pool). */
  readonly trainExamples: number;
  /** λ: 0 is instruction tuning (IT), 1 instruction modelling (IM). */
  readonly promptLossWeight: number;
  readonly templateLossWeight: number;
  readonly klWeight: number;
  readonly neftuneAlpha: number;
  readonly seed: number;
}

export interface CurvePoint {
  readonly step: number;
  /** Output-token loss on a fixed subset of the training examples, in eval mode. */
  readonly trainOutputLoss: number;
  /** Output-token loss on the held-out examples. */
  readonly heldOutOutputLoss: number;
}

export interface RunResult {
  /** Stable name of the run, also its folder under DIR/runs/. */
  readonly id: string;
  readonly params: RunParams;
  readonly status: "done" | "failed";
  /** Why a failed run failed (one line). */
  readonly error?: string;
  /** The training data's mean prompt tokens ÷ mean output tokens, as trained (after truncation). */
  readonly instructionOutputRatio: number;
  /** At the last eval (the end of training). */
  readonly finalTrainOutputLoss: number;
  readonly finalHeldOutOutputLoss: number;
  /** Corpus BLEU (sacreBLEU's defaults) of greedy generations on training prompts against their outputs. */
  readonly bleu: number;
  readonly bleuExamples: number;
  readonly curve: readonly CurvePoint[];
  readonly elapsedSeconds: number;
}

/** Mean and spread over the seeds of one grid cell (every param but the seed equal). */
export interface Aggregate {
  readonly params: Omit<RunParams, "seed">;
  readonly seeds: number;
  readonly heldOutOutputLoss: Spread;
  readonly trainOutputLoss: Spread;
  readonly bleu: Spread;
  readonly instructionOutputRatio: number;
}

export interface Spread {
  readonly mean: number;
  /** Sample standard deviation over seeds (0 with one seed). */
  readonly std: number;
}

/**
 * IM − IT held-out output loss (λ = 1 minus λ = 0, the other knobs at their base values), per data set and
 * training-set size, averaged over seeds: negative means IM generalised better.
 */
export interface ImMinusIt {
  readonly dataset: string;
  readonly trainExamples: number;
  readonly instructionOutputRatio: number;
  readonly difference: Spread;
  readonly seeds: number;
}

/**
 * Held-out output-loss difference from IT (λ = 0) fitted per λ as a + b·ln(ratio) + c·ln(examples), over every
 * data set and size measured: what `imtrain analyze` recommends a λ from.
 */
export interface LambdaFit {
  readonly promptLossWeight: number;
  readonly intercept: number;
  readonly perLogRatio: number;
  readonly perLogExamples: number;
  /** Points the fit used: (data set, size) cells, each the mean over its seeds. */
  readonly points: number;
  readonly rSquared: number;
}

export interface ExperimentResults {
  readonly version: number;
  readonly name: string;
  /** The config file the experiment ran, as given. */
  readonly config: string;
  readonly generatedAt: string;
  /** Base model the runs fine-tuned: a preset, a path, or the pretrain stage's checkpoint (relative to the
   *  experiment's folder when inside it). */
  readonly baseModel: string;
  readonly runs: readonly RunResult[];
  readonly aggregates: readonly Aggregate[];
  readonly imMinusIt: readonly ImMinusIt[];
  readonly fits: readonly LambdaFit[];
}
