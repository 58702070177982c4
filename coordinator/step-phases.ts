// From each rank's own phase seconds to the job's view of a step. A rank's all-reduce cannot finish before
// the slowest rank has computed, so part of it is waiting: for rank r, wait = max_k compute_k − compute_r
// (compute = data + forward_backward), and the all-reduce proper is what remains (never below 0).
import type { RankPhaseSeconds, StepPhaseSeconds } from "../shared/metrics/records.js";

export interface StepPhases {
  /** Each phase's mean over the ranks. */
  readonly phase_s: StepPhaseSeconds;
  /** Per rank: data + forward_backward. */
  readonly rank_compute_s: readonly number[];
  readonly rank_phase_s: readonly StepPhaseSeconds[];
}

export function stepPhases(rankPhases: readonly RankPhaseSeconds[]): StepPhases {
  const compute = rankPhases.map((p) => p.data + p.forward_backward);
  const slowest = Math.max(0, ...compute);
  const perRank = rankPhases.map((p, rank): StepPhaseSeconds => {
    const wait = Math.min(p.allreduce, slowest - (compute[rank] ?? slowest));
    return {
      data: p.data,
      forward_backward: p.forward_backward,
      allreduce: p.allreduce - wait,
      wait,
      optimizer: p.optimizer,
    };
  });
  const mean = (pick: (p: StepPhaseSeconds) => number) =>
    perRank.reduce((sum, p) => sum + pick(p), 0) / Math.max(1, perRank.length);
  return {
    phase_s: {
      data: mean((p) => p.data),
      forward_backward: mean((p) => p.forward_backward),
      allreduce: mean((p) => p.allreduce),
      wait: mean((p) => p.wait),
      optimizer: mean((p) => p.optimizer),
    },
    rank_compute_s: compute,
    rank_phase_s: perRank,
  };
}
