// Learning rate per optimizer step: linear warmup, then a decay to `minLrRatio`·lr at the last step.

export const LR_SCHEDULES = ["cosine", "linear", "constant"] as const;
export type LrSchedule = (typeof LR_SCHEDULES)[number];

export interface ScheduleOptions {
  readonly lr: number;
  readonly lrWarmupSteps: number;
  readonly lrSchedule: LrSchedule;
  readonly minLrRatio: number;
  readonly totalSteps: number;
}

/** The lr of 0-based step `step`. */
export function learningRate(options: ScheduleOptions, step: number): number {
  const { lr, lrWarmupSteps: warmup, lrSchedule, minLrRatio, totalSteps } = options;
  if (step < warmup) return (lr * (step + 1)) / warmup;
  if (lrSchedule === "constant") return lr;
  const progress = Math.min(1, (step - warmup) / Math.max(1, totalSteps - warmup - 1));
  const decay = lrSchedule === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return lr * (minLrRatio + (1 - minLrRatio) * decay);
}
