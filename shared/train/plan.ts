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
