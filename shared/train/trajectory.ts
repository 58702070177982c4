// What determines a run's trajectory, recorded in every checkpoint so that a resume can refuse to continue
// on a different one: the data (a fingerprint of the encoded examples, so the data file, template,
// tokenizer, loss weights and truncation are all in it), the model it started from, and every setting of
// the loss, the batch and the optimizer's schedule. Not in it, so free to change on resume: where output
// goes, how often to evaluate or checkpoint, metrics, the backend, and the number of workers (data
// parallelism is exact).
import { weightsChecksum } from "../model/weights-checksum.js";
import type { TrainOptions } from "../options.js";

/** The weights' checksum in name order (whatever order a loader gave them), as 8 hex digits. */
export function weightsFingerprint(weights: ReadonlyMap<string, Float32Array>): string {
  const byName = new Map([...weights].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return weightsChecksum(byName).toString(16).padStart(8, "0");
}

/** Keyed by the flag that sets each value, for messages. */
export type Trajectory = Readonly<Record<string, string | number | boolean>>;

/**
 * `referenceFingerprint`: of the starting model's weights, when a KL term ties the run to them (a resume
 * rebuilds that reference from --model, so it must be the same model).
 */
export function trajectoryOf(
  options: TrainOptions,
  dataFingerprint: string,
  totalSteps: number,
  referenceFingerprint: string | undefined,
): Trajectory {
  const { data } = options;
  return {
    ...(referenceFingerprint === undefined ? {} : { "kl-reference": referenceFingerprint }),
    data: dataFingerprint,
    model: options.model,
    tokenizer: data.tokenizer,
    "prompt-loss-weight": data.weighting.promptLossWeight,
    "template-loss-weight": data.weighting.templateLossWeight,
    "loss-reduction": options.lossReduction,
    "kl-weight": options.klWeight,
    "neftune-alpha": options.neftuneAlpha,
    seed: options.seed,
    steps: totalSteps,
    "batch-size": options.batchSize,
    "micro-batch-size": options.microBatchSize,
    lr: options.lr,
    "warmup-steps": options.lrWarmupSteps,
    schedule: options.lrSchedule,
    "min-lr-ratio": options.minLrRatio,
    "weight-decay": options.weightDecay,
    beta1: options.beta1,
    beta2: options.beta2,
    "adam-epsilon": options.adamEpsilon,
    "clip-grad-norm": options.clipGradNorm,
  };
}

/** Each setting that differs, as `--flag: RUN in the run, NOW now`; empty when the trajectory is the same. */
export function trajectoryDifferences(run: Trajectory, now: Trajectory): string[] {
  return Object.keys(now).flatMap((key) => {
    if (!(key in run) || run[key] === now[key]) return [];
    const what =
      key === "data"
        ? "the encoded data (a different data file, template, tokenizer, loss weights or context length)"
        : key === "kl-reference"
          ? "the starting model's weights (the KL reference): --model names a model that has changed"
          : `--${key}`;
    return [`${what}: ${String(run[key])} in the run, ${String(now[key])} now`];
  });
}
