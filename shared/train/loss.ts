// The masked IM/IT loss and its normalisation over a whole optimizer step.
//
// For a step with examples e (all micro-batches, all ranks) and predictions i with weight w_i:
//   token:   L = Σ_i w_i·CE_i / Σ_i w_i                       (default)
//   example: L = (1/E) Σ_e [ Σ_{i∈e} w_i·CE_i / Σ_{i∈e} w_i ]  (the paper's per-example mean)
//   sum:     L = Σ_i w_i·CE_i
// Each micro-batch contributes the numerator Σ_i c_e·w_i·CE_i (c_e = 1/Σ_{i∈e} w_i for `example`, else 1)
// and its share of the denominator (Σ w_i, or E, or nothing). Gradients of the numerators are summed
// locally, all-reduced together with the denominators, and only then divided: so any split into
// micro-batches or ranks optimises exactly the same L.
import * as tf from "@tensorflow/tfjs-core";
import type { MicroBatch } from "./batch.js";

export const LOSS_REDUCTIONS = ["token", "example", "sum"] as const;
export type LossReduction = (typeof LOSS_REDUCTIONS)[number];

/** This micro-batch's share of the step's loss denominator. */
export function normaliserShare(reduction: LossReduction, batch: MicroBatch): number {
  if (reduction === "token") return batch.weights.reduce((a, b) => a + b, 0);
  return reduction === "example" ? batch.size : 0;
}

/** The denominator from the step's all-reduced shares. */
export function stepNormaliser(reduction: LossReduction, summedShares: number): number {
  return reduction === "sum" ? 1 : summedShares;
}

/** [B·T] per-prediction coefficient c_e·w_i. */
function lossCoefficients(reduction: LossReduction, batch: MicroBatch): Float32Array {
  if (reduction !== "example") return batch.weights;
  const coefficients = new Float32Array(batch.weights.length);
  for (let b = 0; b < batch.size; b++) {
    const row = batch.weights.subarray(b * batch.length, (b + 1) * batch.length);
    const total = row.reduce((x, y) => x + y, 0);
    for (let t = 0; t < batch.length; t++) coefficients[b * batch.length + t] = (row[t] ?? 0) / total;
  }
  return coefficients;
}

/** The positions of a micro-batch a loss or a report needs: loss-weighted, or an output token. */
export function lossRows(batch: MicroBatch): Int32Array {
  const rows: number[] = [];
  for (let i = 0; i < batch.weights.length; i++)
    if ((batch.weights[i] ?? 0) > 0 || (batch.outputMask[i] ?? 0) > 0) rows.push(i);
  return Int32Array.from(rows);
}

/**
 * logits [N, V], targets [N] → cross-entropy of each prediction [N], as logsumexp minus the target's
 * logit: no [N, V] one-hot beside the [N, V] log-probabilities.
 */
export function crossEntropy(logits: tf.Tensor2D, targets: Int32Array): tf.Tensor1D {
  const [n, vocab] = logits.shape;
  const gold = tf.gather(
    tf.reshape(logits, [n * vocab]),
    tf.tensor1d(
      Int32Array.from(targets, (target, i) => i * vocab + target),
      "int32",
    ),
  );
  return tf.sub(logSumExpRows(logits), gold) as tf.Tensor1D;
}

/**
 * log Σ_v exp(x_v) of each row, through the backend's Softmax p: at a row's largest logit m,
 * p = e^m / Σ e^x, so the sum is m − log(max p). wasm's Exp is scalar (1.6 ms for [1024, 257]) where its
 * Softmax is XNNPACK's. The gradient is p·dy, with p kept from the forward: tfjs's own logSumExp gradient
 * also differentiates the max it subtracts for stability (a [N, V] comparison whose terms cancel).
 */
const logSumExpRows = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
  const probabilities = tf.softmax(x);
  save([probabilities]);
  return {
    value: tf.sub(tf.max(x, 1), tf.log(tf.max(probabilities, 1))),
    gradFunc: (dy, saved) => {
      const [p] = saved as [tf.Tensor2D];
      return [tf.mul(p, tf.expandDims(dy as tf.Tensor1D, 1))];
    },
  };
}) as (x: tf.Tensor2D) => tf.Tensor1D;

function pickRows<T extends Float32Array | Int32Array>(values: T, rows: Int32Array): T {
  const picked = new (values.constructor as new (n: number) => T)(rows.length);
  rows.forEach((row, r) => (picked[r] = values[row] ?? 0));
  return picked;
}

export interface LossTerms {
  /** The differentiated numerator: Σ c·w·(CE + β·KL). */
  readonly objective: tf.Scalar;
  /** [B·T] cross-entropy of each prediction, for reporting. */
  readonly crossEntropy: tf.Tensor1D;
}

/**
 * logits [R, V] at the positions `rows` of the micro-batch (lossRows); refLogits [R, V] of the frozen
 * starting model when a KL weight β > 0. KL(p_θ ‖ p_ref) = Σ_v p_θ(v)·(log p_θ(v) − log p_ref(v)) at
 * each loss-weighted position, over the whole vocabulary (not the gold-token log-ratio, whose gradient
 * cancels the NLL at weight 1). The returned cross-entropy is [R], in the order of `rows`.
 */
export function maskedLoss(
  logits: tf.Tensor2D,
  batch: MicroBatch,
  rows: Int32Array,
  reduction: LossReduction,
  kl?: { readonly refLogits: tf.Tensor2D; readonly weight: number },
): LossTerms {
  const ce = crossEntropy(logits, pickRows(batch.targets, rows)); // [R]
  let perPrediction = ce;
  if (kl && kl.weight > 0) {
    const logProbs = tf.logSoftmax(logits);
    const refLogProbs = tf.logSoftmax(kl.refLogits);
    const divergence = tf.sum(tf.mul(tf.exp(logProbs), tf.sub(logProbs, refLogProbs)), 1);
    perPrediction = tf.add(perPrediction, tf.mul(divergence, kl.weight));
  }
  const coefficients = tf.tensor1d(pickRows(lossCoefficients(reduction, batch), rows));
  return { objective: tf.sum(tf.mul(perPrediction, coefficients)), crossEntropy: ce };
}
