// One row of the report's table: summary.json's figures where the run has ended, else what metrics.jsonl
// shows so far. Undefined is shown as "—".
import type { Logged, MetricsLog } from "./metrics-log.js";
import type { Run } from "./run-dir.js";

export type RunStatus = "finished" | "stopped early" | "running or stopped early";

export interface RunFacts {
  readonly status: RunStatus;
  readonly promptLossWeight: number | undefined;
  readonly templateLossWeight: number | undefined;
  readonly instructionOutputRatio: number | undefined;
  readonly model: string | undefined;
  readonly modelParameters: number | undefined;
  readonly completedSteps: number | undefined;
  readonly plannedSteps: number | undefined;
  readonly finalTrainOutputLoss: number | undefined;
  readonly finalHeldOutLoss: number | undefined;
  readonly finalGap: number | undefined;
  readonly tokensPerS: number | undefined;
  readonly elapsedS: number | undefined;
}

const finite = (value: Logged | undefined): number | undefined =>
  typeof value === "number" && Number.isFinite(value) ? value : undefined;

/** Real tokens over step wall time, from each step's tokens and tokens/s (older runs have no step_s). */
function tokensPerSecond(log: MetricsLog): number | undefined {
  let tokens = 0;
  let seconds = 0;
  for (const line of log.steps) {
    const stepTokens = finite(line.tokens);
    const rate = finite(line.tokens_per_s);
    if (stepTokens === undefined || rate === undefined || rate <= 0) continue;
    tokens += stepTokens;
    seconds += stepTokens / rate;
  }
  return seconds > 0 ? tokens / seconds : undefined;
}

export function runFacts(run: Run): RunFacts {
  const { metrics, summary } = run;
  const lastStep = metrics.steps.at(-1);
  const lastEval = metrics.evals.at(-1);
  // A resumed run keeps the summary.json of its earlier stint until it ends: its settings still hold,
  // its figures do not.
  const ended =
    summary !== undefined &&
    (lastStep === undefined ||
      summary.completedSteps === undefined ||
      lastStep.step <= summary.completedSteps)
      ? summary
      : undefined;
  const completedSteps = ended ? ended.completedSteps : lastStep?.step;
  const plannedSteps = summary?.plannedSteps;
  const status: RunStatus =
    ended === undefined
      ? "running or stopped early"
      : completedSteps !== undefined && plannedSteps !== undefined && completedSteps < plannedSteps
        ? "stopped early"
        : "finished";
  return {
    status,
    promptLossWeight: summary?.promptLossWeight,
    templateLossWeight: summary?.templateLossWeight,
    instructionOutputRatio: summary?.instructionOutputRatio,
    model: summary?.model,
    modelParameters: summary?.modelParameters,
    completedSteps,
    plannedSteps,
    finalTrainOutputLoss: ended ? ended.finalTrainOutputLoss : finite(lastStep?.train_output_loss),
    finalHeldOutLoss: ended ? ended.finalHeldOutLoss : finite(lastEval?.eval_output_loss),
    finalGap: ended ? ended.finalGap : finite(lastEval?.overfitting_gap),
    tokensPerS: ended ? ended.tokensPerS : tokensPerSecond(metrics),
    elapsedS: ended?.elapsedS,
  };
}
