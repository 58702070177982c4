// What the job reports, behind a small interface: metrics.jsonl is one sink, Prometheus another. The field
// names are metrics.jsonl's, so a line is a record as it is.

/** Seconds one rank spent in each phase of one optimizer step, measured on that rank. */
export interface RankPhaseSeconds {
  /** Picking the rank's examples and padding them into micro-batches. */
  readonly data: number;
  /** Forward, masked loss and backward over every micro-batch, into the step buffer. */
  readonly forward_backward: number;
  /** The all-reduce of the step buffer, including any time blocked on slower ranks. */
  readonly allreduce: number;
  /** Normalise, clip, AdamW. */
  readonly optimizer: number;
}

/** A rank's phases as the job reports them: the all-reduce split into waiting for the slowest rank and the rest. */
export interface StepPhaseSeconds {
  readonly data: number;
  readonly forward_backward: number;
  /** All-reduce time beyond `wait`. */
  readonly allreduce: number;
  /** Time blocked on the slowest rank: the step's largest compute (data + forward_backward) minus this rank's. */
  readonly wait: number;
  readonly optimizer: number;
}

export const STEP_PHASES = ["data", "forward_backward", "allreduce", "wait", "optimizer"] as const;
/** Every phase a rank's time is reported in: the step's, then eval and checkpoint. */
export const RANK_PHASES = [...STEP_PHASES, "eval", "checkpoint"] as const;
export type RankPhase = (typeof RANK_PHASES)[number];

export interface StepRecord {
  readonly step: number;
  readonly lr: number;
  readonly train_loss: number;
  readonly train_output_loss: number;
  readonly tokens: number;
  readonly loss_tokens: number;
  readonly examples: number;
  /** Global gradient L2 norm before clipping. */
  readonly grad_norm: number;
  /** Real (unpadded) tokens per second of wall time for the whole step. */
  readonly tokens_per_s: number;
  /** Wall time of the whole step as the job saw it. */
  readonly step_s: number;
  /** Model FLOPs of the step (shared/metrics/flops.ts). */
  readonly flops: number;
  /** Each phase's mean over the ranks. */
  readonly phase_s: StepPhaseSeconds;
  /** Per rank: data + forward_backward seconds; the largest is the straggler. */
  readonly rank_compute_s: readonly number[];
  /** The worker rank at each position of rank_compute_s when it is not the position itself (after a recovery). */
  readonly rank_ids?: readonly number[];
  /** tfjs's count of live tensors, and their bytes, on the (first) rank after the step: flat in a healthy run. */
  readonly tensors?: number;
  readonly tensor_bytes?: number;
  /** Per rank, the phases with `wait` split out (not written to metrics.jsonl: phase_s and rank_compute_s summarise it). */
  readonly rank_phase_s?: readonly StepPhaseSeconds[];
}

export interface EvalRecord {
  readonly step: number;
  /** Output-token loss on held-out data. */
  readonly eval_output_loss: number;
  /** Output-token loss on a fixed training subset, in eval mode (no noise). */
  readonly train_eval_output_loss: number;
  /** eval_output_loss − train_eval_output_loss: how much the model fits train beyond what generalises. */
  readonly overfitting_gap: number;
  /** Wall time of the eval as the job saw it. */
  readonly eval_s: number;
  /** Per rank, seconds spent scoring (not written to metrics.jsonl). */
  readonly rank_eval_s?: readonly number[];
  /** The worker rank at each position of rank_eval_s, when it differs from the position. */
  readonly rank_ids?: readonly number[];
}

export interface CheckpointRecord {
  /** The step the checkpoint holds. */
  readonly step: number;
  readonly checkpoint_s: number;
  /** The rank that wrote it. */
  readonly rank: number;
}

export interface MetricsSink {
  step(record: StepRecord): void;
  eval(record: EvalRecord): void;
  checkpoint(record: CheckpointRecord): void;
  close(): Promise<void>;
}
