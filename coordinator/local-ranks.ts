// One rank in this process: `imtrain train`. The all-reduce over one rank is the identity.
import type { LossSums, StepResult } from "../shared/protocol.js";
import type { Rank } from "../worker/rank.js";
import { trainStep } from "../worker/train-step.js";
import { addSums, type RankGroup } from "./rank-group.js";

export class LocalRanks implements RankGroup {
  readonly worldSize = 1;

  constructor(private readonly rank: Rank) {}

  step(step: number, assignments: readonly (readonly number[])[]): Promise<StepResult> {
    return trainStep(this.rank, step, assignments.flat(), async (buffer) => buffer);
  }

  async evaluate(
    heldOut: readonly (readonly number[])[],
    train: readonly (readonly number[])[],
  ): Promise<{ heldOut: LossSums; train: LossSums }> {
    const sums = this.rank.evaluate(heldOut.flat(), train.flat());
    return { heldOut: addSums([sums.heldOut]), train: addSums([sums.train]) };
  }

  checkpoint(dir: string, seed: number): Promise<void> {
    return this.rank.saveCheckpoint(dir, seed);
  }

  async close(): Promise<void> {
    this.rank.dispose();
  }
}
