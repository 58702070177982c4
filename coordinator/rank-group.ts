// The ranks a job drives, wherever they run: one in this process, or N workers over NATS.
import type { LossSums, StepResult } from "../shared/protocol.js";

export interface RankGroup {
  readonly worldSize: number;
  /** Runs one optimizer step; `assignments[r]` are rank r's training positions. */
  step(
    step: number,
    assignments: readonly (readonly number[])[],
    compareChecksums: boolean,
  ): Promise<StepResult>;
  /** Output-loss sums over held-out and training-subset positions, split by rank. */
  evaluate(
    heldOut: readonly (readonly number[])[],
    train: readonly (readonly number[])[],
  ): Promise<{ heldOut: LossSums; train: LossSums }>;
  /** Saves the ranks' (identical) state as a resumable checkpoint. */
  checkpoint(dir: string, seed: number): Promise<void>;
  close(reason: string): Promise<void>;
}

/** Sums per-rank loss sums. */
export function addSums(parts: readonly LossSums[]): LossSums {
  return [parts.reduce((a, p) => a + p[0], 0), parts.reduce((a, p) => a + p[1], 0)];
}
