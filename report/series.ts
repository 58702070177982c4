// The series a report plots, taken from a run's metrics.jsonl as they are: [step, value] per record that has
// the field, null kept where the run logged NaN/Infinity (charts leave those points out; the embedded JSON
// keeps them so it equals the file).
import { STEP_PHASES, type RankPhase } from "../shared/metrics/records.js";
import type { Logged, MetricsLog } from "./metrics-log.js";

export type Point = readonly [step: number, value: Logged];

/** Each plotted series: its metrics.jsonl field and the line type that holds it. */
export const SERIES = {
  train_output_loss: "step",
  eval_output_loss: "eval",
  train_eval_output_loss: "eval",
  overfitting_gap: "eval",
  tokens_per_s: "step",
} as const;
export type SeriesName = keyof typeof SERIES;
export const SERIES_NAMES = Object.keys(SERIES) as SeriesName[];

export type RunSeries = Readonly<Record<SeriesName, readonly Point[]>>;

export function runSeries(log: MetricsLog): RunSeries {
  const series = {} as Record<SeriesName, Point[]>;
  for (const name of SERIES_NAMES) {
    const lines: readonly { step: number; [field: string]: unknown }[] =
      SERIES[name] === "step" ? log.steps : log.evals;
    series[name] = lines.flatMap((line) => {
      const value = line[name];
      return typeof value === "number" || value === null ? [[line.step, value] as const] : [];
    });
  }
  return series;
}

const finite = (value: Logged | undefined): value is number =>
  typeof value === "number" && Number.isFinite(value);

const mean = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;

/**
 * Mean seconds per optimizer step in each phase, or undefined for a run that logged no `phase_s` (older
 * runs). eval and checkpoint happen every few steps, so their totals are spread over all steps: the bars
 * then stack to the mean wall time per step. Phases the run never logged are left out.
 */
export function phaseSecondsPerStep(log: MetricsLog): Partial<Record<RankPhase, number>> | undefined {
  const phased = log.steps.flatMap((line) => (line.phase_s === undefined ? [] : [line.phase_s]));
  if (phased.length === 0) return undefined;
  const means: Partial<Record<RankPhase, number>> = {};
  for (const phase of STEP_PHASES) {
    const values = phased.map((phases) => phases[phase]).filter(finite);
    if (values.length > 0) means[phase] = mean(values);
  }
  const spread = (values: readonly number[]) =>
    values.reduce((sum, value) => sum + value, 0) / log.steps.length;
  const evalSeconds = log.evals.map((line) => line.eval_s).filter(finite);
  if (evalSeconds.length > 0) means.eval = spread(evalSeconds);
  const checkpointSeconds = log.checkpoints.map((line) => line.checkpoint_s).filter(finite);
  if (checkpointSeconds.length > 0) means.checkpoint = spread(checkpointSeconds);
  return means;
}
