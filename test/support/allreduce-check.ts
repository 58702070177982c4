// Inputs and the one check every all-reduce test makes: the float64 sum within float32 rounding, and the
// same bits on every rank.
import assert from "node:assert/strict";
import { mulberry32 } from "../../shared/random.js";

/** One buffer per rank of values in [-1, 1), scaled per element so magnitudes vary. */
export function rankInputs(worldSize: number, length: number, seed: number): Float32Array[] {
  const random = mulberry32(seed);
  return Array.from({ length: worldSize }, () =>
    Float32Array.from({ length }, (_, i) => (2 * random() - 1) * (1 + (i % 7) * 100)),
  );
}

/**
 * `unitRoundoff`: the relative rounding of one step, 2^-24 for fp32 arithmetic; a narrowed wire rounds each
 * partial sum it sends (bf16 2^-9, fp16 2^-12) and the owner's final sum once more.
 */
export function assertSummedAndIdentical(
  outputs: readonly Float32Array[],
  inputs: readonly Float32Array[],
  unitRoundoff = 2 ** -24,
): void {
  const first = outputs[0];
  assert.ok(first !== undefined);
  for (let i = 0; i < first.length; i++) {
    let sum = 0;
    let magnitude = 0;
    for (const input of inputs) {
      sum += input[i] ?? NaN;
      magnitude += Math.abs(input[i] ?? NaN);
    }
    // N − 1 additions and up to N roundings, each off by at most unitRoundoff × a partial sum ≤ magnitude
    const tolerance = 2 * inputs.length * unitRoundoff * magnitude;
    const got: number = first[i] ?? NaN;
    if (!(Math.abs(got - sum) <= tolerance)) assert.fail(`element ${i}: got ${got}, float64 sum ${sum}`);
  }
  const bytes = (array: Float32Array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength);
  for (const [rank, output] of outputs.entries())
    assert.equal(bytes(output).compare(bytes(first)), 0, `rank ${rank} differs from rank 0`);
}
