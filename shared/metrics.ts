// What the job reports, behind a small interface: metrics.jsonl is one sink, Prometheus another.

export interface StepRecord {
  readonly step: number;
  readonly lr: number;
  readonly train_loss: number;
  readonly train_output_loss: number;
  readonly tokens: number;
  readonly loss_tokens: number;
  readonly grad_norm: number;
  /** Real (unpadded) tokens per second of wall time for the whole step. */
  readonly tokens_per_s: number;
}

export interface EvalRecord {
  readonly step: number;
  /** Output-token loss on held-out data. */
  readonly eval_output_loss: number;
  /** Output-token loss on a fixed training subset, in eval mode (no noise). */
  readonly train_eval_output_loss: number;
  /** eval_output_loss − train_eval_output_loss: how much the model fits train beyond what generalises. */
  readonly overfitting_gap: number;
}

export interface MetricsSink {
  step(record: StepRecord): void;
  eval(record: EvalRecord): void;
  close(): Promise<void>;
}
