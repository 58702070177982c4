// The two sets eval compares: held-out examples, and a fixed subset of the training examples scored the
// same way. Their output-loss difference is the overfitting gap.
import type { Dataset, Example } from "./dataset.js";
import { hashKeys, mulberry32, permutation } from "../random.js";
import { UserError } from "../errors.js";

export interface EvalSplit {
  readonly train: readonly Example[];
  readonly heldOut: readonly Example[];
}

/** Holds out `fraction` of the training file (a seeded choice) when no eval file is given. */
export function splitHeldOut(dataset: Dataset, fraction: number, seed: number): EvalSplit {
  if (fraction === 0) return { train: dataset.examples, heldOut: [] };
  const n = dataset.examples.length;
  const heldOutCount = Math.max(1, Math.round(n * fraction));
  if (heldOutCount >= n) {
    throw new UserError(
      `${dataset.file}: ${n} examples are too few to hold out ${fraction} for eval; pass --eval-data`,
    );
  }
  const order = permutation(n, mulberry32(hashKeys(seed, 0xe7a1)));
  const pick = (positions: Int32Array) =>
    [...positions].sort((a, b) => a - b).map((p) => dataset.examples[p] as Example);
  return { train: pick(order.subarray(heldOutCount)), heldOut: pick(order.subarray(0, heldOutCount)) };
}

/** At most `count` examples, the same ones at every eval: a seeded choice. */
export function fixedSubset(examples: readonly Example[], count: number, seed: number): Example[] {
  if (examples.length <= count) return [...examples];
  const order = permutation(examples.length, mulberry32(hashKeys(seed, 0x7e57)));
  return [...order.subarray(0, count)].sort((a, b) => a - b).map((p) => examples[p] as Example);
}
