// The ranks a job drives, wherever they run: one in this process, or N workers over NATS.
import type { RankPhaseSeconds } from "../shared/metrics/records.js";
import type { LossSums, StepResult } from "../shared/protocol.js";

export interface GroupStep {
  /** Identical on every rank. */
  readonly result: StepResult;
  /** Each rank's own phase seconds, in ring order. */
  readonly rankPhases: readonly RankPhaseSeconds[];
  /** The rank (worker id) at each ring position, when it is not simply the position (after a recovery). */
  readonly ranks?: readonly number[];
  /** tfjs's own count of the first rank's live tensors after the step (a leak grows it). */
  readonly memory?: TensorMemory;
}

export interface TensorMemory {
  readonly tensors: number;
  readonly bytes: number;
}

export interface GroupEval {
  readonly heldOut: LossSums;
  readonly train: LossSums;
  /** Each rank's scoring seconds, in ring order. */
  readonly rankSeconds: readonly number[];
  readonly ranks?: readonly number[];
}

export interface GroupCheckpoint {
  /** The rank that wrote it. */
  readonly rank: number;
  readonly seconds: number;
}

export interface RankGroup {
  readonly worldSize: number;
  /** Runs one optimizer step; `assignments[r]` are rank r's training positions. */
  step(
    step: number,
    assignments: readonly (readonly number[])[],
    compareChecksums: boolean,
  ): Promise<GroupStep>;
  /** Output-loss sums over held-out and training-subset positions, split by rank. */
  evaluate(
    heldOut: readonly (readonly number[])[],
    train: readonly (readonly number[])[],
  ): Promise<GroupEval>;
  /** Saves the ranks' (identical) state as a resumable checkpoint. */
  checkpoint(dir: string, seed: number): Promise<GroupCheckpoint>;
  /** Brings in workers that joined to replace lost ones (at a step boundary), if the group has any. */
  admitReplacements?(stateDir: string, seed: number, timeoutMs: number): Promise<void>;
  /** Ends the group; `failed` tells remote workers the job failed (they exit non-zero). */
  close(reason: string, failed?: boolean): Promise<void>;
}

/** Sums per-rank loss sums. */
export function addSums(parts: readonly LossSums[]): LossSums {
  return [parts.reduce((a, p) => a + p[0], 0), parts.reduce((a, p) => a + p[1], 0)];
}

/** Seconds since `startedMs` (a performance.now() reading). */
export function secondsSince(startedMs: number): number {
  return (performance.now() - startedMs) / 1000;
}
