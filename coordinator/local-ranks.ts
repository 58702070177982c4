// One rank in this process: `imtrain train`. The all-reduce over one rank is the identity.
import * as tf from "@tensorflow/tfjs-core";
import type { RankMetrics } from "../shared/metrics/rank-metrics.js";
import type { Rank } from "../worker/rank.js";
import { trainStep } from "../worker/train-step.js";
import {
  addSums,
  secondsSince,
  type GroupCheckpoint,
  type GroupEval,
  type GroupStep,
  type RankGroup,
} from "./rank-group.js";

export class LocalRanks implements RankGroup {
  readonly worldSize = 1;

  constructor(
    private readonly rank: Rank,
    private readonly metrics: RankMetrics | undefined,
  ) {}

  async step(step: number, assignments: readonly (readonly number[])[]): Promise<GroupStep> {
    const { result, phases } = await trainStep(this.rank, step, assignments.flat(), async (buffer) => buffer);
    this.metrics?.recordMemory();
    const { numTensors, numBytes } = tf.memory();
    return { result, rankPhases: [phases], memory: { tensors: numTensors, bytes: numBytes } };
  }

  async evaluate(
    heldOut: readonly (readonly number[])[],
    train: readonly (readonly number[])[],
  ): Promise<GroupEval> {
    const started = performance.now();
    const sums = await this.rank.evaluateAsync(heldOut.flat(), train.flat());
    return {
      heldOut: addSums([sums.heldOut]),
      train: addSums([sums.train]),
      rankSeconds: [secondsSince(started)],
    };
  }

  async checkpoint(dir: string, seed: number): Promise<GroupCheckpoint> {
    const started = performance.now();
    await this.rank.saveCheckpoint(dir, seed, this.rank.options.keepCheckpoints);
    return { rank: 0, seconds: secondsSince(started) };
  }

  async close(): Promise<void> {
    this.rank.dispose();
  }
}
