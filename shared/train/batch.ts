// Examples → one padded micro-batch of host arrays, shifted so position t predicts token t+1.
import type { Example } from "../data/dataset.js";
import { OUTPUT_KIND } from "../data/encode.js";

export interface MicroBatch {
  readonly size: number;
  /** Input positions: the longest example's length − 1. */
  readonly length: number;
  /** [B·T] input ids, padded with `padId`. */
  readonly inputs: Int32Array;
  /** [B·T] the id each position predicts. */
  readonly targets: Int32Array;
  /** [B·T] loss weight of each prediction (0 on padding). */
  readonly weights: Float32Array;
  /** [B·T] 1 where the target is an output token: the output-only loss, comparable across λ. */
  readonly outputMask: Float32Array;
  /** [B] real input positions of each example (NEFTune's L). */
  readonly inputLengths: Int32Array;
  /** [B] dataset index of each example (keys its randomness). */
  readonly exampleIndices: Int32Array;
}

export function makeMicroBatch(examples: readonly Example[], padId: number): MicroBatch {
  const size = examples.length;
  const length = Math.max(1, ...examples.map((e) => e.ids.length - 1));
  const batch: MicroBatch = {
    size,
    length,
    inputs: new Int32Array(size * length).fill(padId),
    targets: new Int32Array(size * length).fill(padId),
    weights: new Float32Array(size * length),
    outputMask: new Float32Array(size * length),
    inputLengths: new Int32Array(size),
    exampleIndices: new Int32Array(size),
  };
  examples.forEach((example, b) => {
    const n = example.ids.length - 1;
    const row = b * length;
    batch.inputs.set(example.ids.subarray(0, n), row);
    batch.targets.set(example.ids.subarray(1), row);
    batch.weights.set(example.weights.subarray(1), row);
    for (let t = 0; t < n; t++) batch.outputMask[row + t] = example.kinds[t + 1] === OUTPUT_KIND ? 1 : 0;
    batch.inputLengths[b] = n;
    batch.exampleIndices[b] = example.index;
  });
  return batch;
}

/** Splits a list into consecutive chunks of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}
