// Forward + masked loss + backward over a rank's micro-batches, summed into one step buffer.
import * as tf from "@tensorflow/tfjs-core";
import type { Gpt } from "../model/gpt.js";
import { hashKeys, mulberry32 } from "../random.js";
import type { MicroBatch } from "./batch.js";
import { lossRows, maskedLoss, normaliserShare, type LossReduction } from "./loss.js";
import type { StepBufferLayout, StepTotals } from "./step-buffer.js";

export interface GradientOptions {
  readonly lossReduction: LossReduction;
  readonly klWeight: number;
  readonly neftuneAlpha: number;
  readonly seed: number;
}

/**
 * NEFTune: uniform(−1, 1) noise scaled by α/√(L·d) on the token embeddings, L the example's own input
 * length (not the padded one). Keyed by (seed, step, example) so every world size draws the same noise.
 * Returns [B, T, d].
 */
function embeddingNoise(
  batch: MicroBatch,
  embedDim: number,
  alpha: number,
  seed: number,
  step: number,
): tf.Tensor3D {
  const noise = new Float32Array(batch.size * batch.length * embedDim);
  for (let b = 0; b < batch.size; b++) {
    const length = batch.inputLengths[b] ?? 1;
    const scale = alpha / Math.sqrt(length * embedDim);
    const random = mulberry32(hashKeys(seed, step, batch.exampleIndices[b] ?? 0, 0x2ef7));
    const row = b * batch.length * embedDim;
    for (let i = 0; i < length * embedDim; i++) noise[row + i] = (2 * random() - 1) * scale;
  }
  return tf.tensor3d(noise, [batch.size, batch.length, embedDim]);
}

function emptyTotals(): StepTotals {
  return {
    objective: 0,
    normaliserShare: 0,
    outputLossSum: 0,
    outputTokens: 0,
    lossTokens: 0,
    tokens: 0,
    examples: 0,
  };
}

/** Adds a micro-batch's reporting totals, from the cross-entropy [R] at its positions `rows`. */
function addTotals(
  totals: StepTotals,
  batch: MicroBatch,
  rows: Int32Array,
  crossEntropy: Float32Array,
  objective: number,
  reduction: LossReduction,
): void {
  totals.objective += objective;
  totals.normaliserShare += normaliserShare(reduction, batch);
  rows.forEach((i, r) => {
    const isOutput = batch.outputMask[i] ?? 0;
    totals.outputLossSum += isOutput * (crossEntropy[r] ?? 0);
    totals.outputTokens += isOutput;
    if ((batch.weights[i] ?? 0) > 0) totals.lossTokens++;
  });
  for (const length of batch.inputLengths) totals.tokens += length + 1;
  totals.examples += batch.size;
}

/**
 * Σ over micro-batches of ∂(numerator)/∂θ, laid out per `layout`, with the step totals behind.
 * `reference` is the frozen starting model for the KL term. Reads back asynchronously: a GPU backend
 * (webgpu) has no synchronous read under Node.
 */
export async function accumulateGradients(
  model: Gpt,
  reference: Gpt | undefined,
  batches: readonly MicroBatch[],
  layout: StepBufferLayout,
  options: GradientOptions,
  step: number,
): Promise<Float32Array> {
  const paramByVariable = new Map([...model.params].map(([name, v]) => [v.name, name]));
  const sums = new Map<string, tf.Tensor>();
  const totals = emptyTotals();
  for (const batch of batches) {
    let crossEntropy: tf.Tensor | undefined;
    const rows = lossRows(batch);
    const rowIndices = tf.tensor1d(rows, "int32");
    const inputs = tf.tensor2d(batch.inputs, [batch.size, batch.length], "int32");
    // The frozen reference runs outside the gradient tape: nothing of it is kept for the backward pass.
    const refLogits =
      reference && options.klWeight > 0
        ? tf.tidy(() => reference.forward(inputs, undefined, rowIndices))
        : undefined;
    const { value, grads } = tf.variableGrads(() => {
      const noise =
        options.neftuneAlpha > 0
          ? embeddingNoise(batch, model.config.embedDim, options.neftuneAlpha, options.seed, step)
          : undefined;
      const logits = model.forward(inputs, noise, rowIndices); // [R, V]
      const kl = refLogits ? { refLogits, weight: options.klWeight } : undefined;
      const terms = maskedLoss(logits, batch, rows, options.lossReduction, kl);
      crossEntropy = tf.keep(terms.crossEntropy);
      return terms.objective;
    }, [...model.params.values()]);
    tf.dispose([rowIndices, inputs, ...(refLogits ? [refLogits] : [])]);
    for (const [variableName, gradient] of Object.entries(grads)) {
      const name = paramByVariable.get(variableName) ?? variableName;
      const previous = sums.get(name);
      sums.set(name, previous ? tf.tidy(() => tf.add(previous, gradient)) : gradient);
      if (previous) {
        previous.dispose();
        gradient.dispose();
      }
    }
    const [perPrediction, objective] = await Promise.all([
      crossEntropy?.data() ?? new Float32Array(),
      value.data(),
    ]);
    addTotals(totals, batch, rows, perPrediction as Float32Array, objective[0] ?? 0, options.lossReduction);
    crossEntropy?.dispose();
    value.dispose();
  }
  // One download for all gradients, in the layout's order: one copy per step whatever the model's size (on a
  // GPU each read is a round trip). A parameter with no gradient gets zeros.
  const flat = tf.tidy(() =>
    tf.concat(
      [...layout.shapes].map(([name, shape]) => tf.reshape(sums.get(name) ?? tf.zeros([...shape]), [-1])),
    ),
  );
  tf.dispose([...sums.values()]);
  const buffer = new Float32Array(layout.size);
  buffer.set((await flat.data()) as Float32Array);
  flat.dispose();
  layout.writeTotals(buffer, totals);
  return buffer;
}
