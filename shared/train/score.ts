// Eval-mode losses per example (no noise, no KL): the output-only loss comparable across λ, and the
// loss over every predicted token.
import * as tf from "@tensorflow/tfjs-core";
import type { Example } from "../data/dataset.js";
import type { Gpt } from "../model/gpt.js";
import { chunk, makeMicroBatch, type MicroBatch } from "./batch.js";
import { crossEntropy } from "./loss.js";

export interface ExampleScore {
  readonly index: number;
  readonly outputLossSum: number;
  readonly outputTokens: number;
  readonly allLossSum: number;
  readonly allTokens: number;
}

/** Cross-entropy of every prediction of a micro-batch, [B·T]. */
function perPredictionLoss(model: Gpt, batch: MicroBatch): tf.Tensor {
  return tf.tidy(() => {
    const logits = model.forward(tf.tensor2d(batch.inputs, [batch.size, batch.length], "int32"));
    return crossEntropy(logits, batch.targets);
  });
}

/** Adds the scores of `group` (the examples of `batch`) from its per-prediction losses. */
function addScores(
  scores: ExampleScore[],
  group: readonly Example[],
  batch: MicroBatch,
  values: Float32Array,
): void {
  group.forEach((example, b) => {
    let outputLossSum = 0;
    let outputTokens = 0;
    let allLossSum = 0;
    const n = batch.inputLengths[b] ?? 0;
    for (let t = 0; t < n; t++) {
      const i = b * batch.length + t;
      const ce = values[i] ?? 0;
      allLossSum += ce;
      if ((batch.outputMask[i] ?? 0) > 0) {
        outputLossSum += ce;
        outputTokens++;
      }
    }
    scores.push({ index: example.index, outputLossSum, outputTokens, allLossSum, allTokens: n });
  });
}

/** Scores read synchronously: a backend that can (not webgpu); see `scoreExamplesAsync`. */
export function scoreExamples(
  model: Gpt,
  examples: readonly Example[],
  microBatchSize: number,
  padId: number,
): ExampleScore[] {
  const scores: ExampleScore[] = [];
  for (const group of chunk(examples, microBatchSize)) {
    const batch = makeMicroBatch(group, padId);
    const perPrediction = perPredictionLoss(model, batch);
    const values = perPrediction.dataSync() as Float32Array;
    perPrediction.dispose();
    addScores(scores, group, batch, values);
  }
  return scores;
}

/** The same scores, read asynchronously (any backend). */
export async function scoreExamplesAsync(
  model: Gpt,
  examples: readonly Example[],
  microBatchSize: number,
  padId: number,
): Promise<ExampleScore[]> {
  const scores: ExampleScore[] = [];
  for (const group of chunk(examples, microBatchSize)) {
    const batch = makeMicroBatch(group, padId);
    const perPrediction = perPredictionLoss(model, batch);
    const values = (await perPrediction.data()) as Float32Array;
    perPrediction.dispose();
    addScores(scores, group, batch, values);
  }
  return scores;
}

/** Token-weighted mean output loss over a set of examples. */
export function meanOutputLoss(scores: readonly ExampleScore[]): number {
  const tokens = scores.reduce((a, s) => a + s.outputTokens, 0);
  return scores.reduce((a, s) => a + s.outputLossSum, 0) / Math.max(1, tokens);
}
