// One optimizer step on one rank, as a recipe:
//   lr → batch → forward + masked loss → backward → all-reduce → normalise → clip → apply → report
// Each phase is timed with the clock only; the figures are reported, never waited for.
import { throwIfBackendFailed } from "../shared/backend/select.js";
import { chunk, makeMicroBatch } from "../shared/train/batch.js";
import { accumulateGradients } from "../shared/train/gradients.js";
import { stepNormaliser } from "../shared/train/loss.js";
import { learningRate } from "../shared/train/schedule.js";
import { clipGradNorm } from "../shared/train/step-buffer.js";
import type { RankPhaseSeconds } from "../shared/metrics/records.js";
import type { StepResult } from "../shared/protocol.js";
import type { Rank } from "./rank.js";

/** Sums a step buffer over all ranks; the identity for a single process. */
export type AllReduce = (buffer: Float32Array) => Promise<Float32Array>;

export interface RankStep {
  /** Identical on every rank. */
  readonly result: StepResult;
  /** This rank's own. */
  readonly phases: RankPhaseSeconds;
}

/** `examples`: this rank's dataset positions for the step (the whole global batch when alone). */
export async function trainStep(
  rank: Rank,
  step: number,
  examples: readonly number[],
  allReduce: AllReduce,
): Promise<RankStep> {
  const { options, layout } = rank;
  const clock = new PhaseClock();
  const lr = learningRate(rank.schedule, step);
  const batches = chunk(rank.trainExamples(examples), options.microBatchSize).map((group) =>
    makeMicroBatch(group, rank.padId),
  );
  const data = clock.lap();
  const local = await accumulateGradients(rank.model, rank.reference, batches, layout, options, step);
  throwIfBackendFailed();
  const forwardBackward = clock.lap();
  const global = await allReduce(local);
  const allreduce = clock.lap();
  const totals = layout.readTotals(global);
  const normaliser = stepNormaliser(options.lossReduction, totals.normaliserShare);
  const gradients = layout.gradients(global);
  for (let i = 0; i < gradients.length; i++) gradients[i] = (gradients[i] ?? 0) / normaliser;
  const gradNorm = clipGradNorm(gradients, options.clipGradNorm);
  rank.optimizer.apply(layout, gradients, lr);
  const optimizer = clock.lap();
  return {
    result: {
      lr,
      trainLoss: totals.objective / normaliser,
      trainOutputLoss: totals.outputLossSum / Math.max(1, totals.outputTokens),
      tokens: totals.tokens,
      lossTokens: totals.lossTokens,
      examples: totals.examples,
      gradNorm,
    },
    phases: { data, forward_backward: forwardBackward, allreduce, optimizer },
  };
}

/** Seconds since the last lap. */
class PhaseClock {
  private last = performance.now();

  lap(): number {
    const now = performance.now();
    const seconds = (now - this.last) / 1000;
    this.last = now;
    return seconds;
  }
}
