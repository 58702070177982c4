// Which examples make each optimizer step. The global batch of step s, and its order, are a function of
// (seed, s, dataset size) only — never of the number of workers — so any world size trains on the
// same stream. Epoch e is a permutation keyed by (seed, e); steps read the concatenated epochs.
import { hashKeys, mulberry32, permutation } from "../random.js";

export class BatchPlan {
  private readonly epochs = new Map<number, Int32Array>();

  constructor(
    readonly seed: number,
    readonly datasetSize: number,
    readonly batchSize: number,
  ) {}

  private epochOrder(epoch: number): Int32Array {
    let order = this.epochs.get(epoch);
    if (order === undefined) {
      order = permutation(this.datasetSize, mulberry32(hashKeys(this.seed, epoch, 0x5eed)));
      this.epochs.clear(); // steps move forward; one epoch's order at a time is enough
      this.epochs.set(epoch, order);
    }
    return order;
  }

  /** Dataset positions of step `step`'s global batch (0-based step), in order. */
  globalBatch(step: number): number[] {
    const batch: number[] = [];
    for (let j = 0; j < this.batchSize; j++) {
      const k = step * this.batchSize + j;
      const order = this.epochOrder(Math.floor(k / this.datasetSize));
      batch.push(order[k % this.datasetSize] ?? 0);
    }
    return batch;
  }

  /** Optimizer steps in `epochs` passes over the data (the last batch may cross into the next epoch). */
  stepsForEpochs(epochs: number): number {
    return Math.max(1, Math.ceil((epochs * this.datasetSize) / this.batchSize));
  }
}

/**
 * Splits a global batch among ranks, balanced by tokens: longest example first to the least-loaded rank
 * (ties to the lower rank). Each rank keeps its examples in global-batch order. Deterministic; the
 * split changes only how the sum is grouped, never the loss (the normaliser is global).
 */
export function assignToRanks(
  batch: readonly number[],
  lengthOf: (position: number) => number,
  worldSize: number,
): number[][] {
  const load = new Array<number>(worldSize).fill(0);
  const owner = new Array<number>(batch.length).fill(0);
  const order = batch
    .map((_, i) => i)
    .sort((a, b) => lengthOf(batch[b] ?? 0) - lengthOf(batch[a] ?? 0) || a - b);
  for (const i of order) {
    let best = 0;
    for (let r = 1; r < worldSize; r++) if ((load[r] ?? 0) < (load[best] ?? 0)) best = r;
    owner[i] = best;
    load[best] = (load[best] ?? 0) + lengthOf(batch[i] ?? 0);
  }
  return Array.from({ length: worldSize }, (_, r) => batch.filter((_, i) => owner[i] === r));
}

/** Splits positions 0..count-1 into `worldSize` contiguous, near-equal parts (eval work). */
export function splitEvenly(count: number, worldSize: number): number[][] {
  return Array.from({ length: worldSize }, (_, r) => {
    const start = Math.floor((r * count) / worldSize);
    const end = Math.floor(((r + 1) * count) / worldSize);
    return Array.from({ length: end - start }, (_, i) => start + i);
  });
}
