// What a report takes from a run's summary.json (coordinator/job.ts writes it when the run ends). Older
// runs lack the newer top-level fields; those fall back to the options the run recorded, else stay unknown.
import { readFileSync } from "node:fs";
import { UserError } from "../shared/errors.js";

export interface RunSummary {
  readonly plannedSteps: number | undefined;
  readonly completedSteps: number | undefined;
  /** λ: loss weight on instruction tokens (0 = IT, 1 = IM). */
  readonly promptLossWeight: number | undefined;
  readonly templateLossWeight: number | undefined;
  /** Mean prompt tokens / mean output tokens of the training data. */
  readonly instructionOutputRatio: number | undefined;
  readonly model: string | undefined;
  readonly modelParameters: number | undefined;
  readonly finalTrainOutputLoss: number | undefined;
  readonly finalHeldOutLoss: number | undefined;
  readonly finalGap: number | undefined;
  readonly tokensPerS: number | undefined;
  readonly elapsedS: number | undefined;
}

/** summary.json that is there but cannot be read as one. */
export class SummaryFileError extends UserError {
  override readonly name = "SummaryFileError";
  constructor(
    readonly file: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${reason}`, options);
  }
}

type JsonObject = Record<string, unknown>;

const objectAt = (value: unknown, key: string): JsonObject | undefined => {
  const field = typeof value === "object" && value !== null ? (value as JsonObject)[key] : undefined;
  return typeof field === "object" && field !== null && !Array.isArray(field)
    ? (field as JsonObject)
    : undefined;
};

/** A finite number, else undefined (summary.json holds null where the run had NaN). */
const numberAt = (object: JsonObject | undefined, key: string): number | undefined => {
  const value = object?.[key];
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
};

export function readRunSummary(file: string): RunSummary {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new SummaryFileError(file, `not JSON (${(error as Error).message})`, { cause: error });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new SummaryFileError(file, "not a JSON object");
  }
  const summary = parsed as JsonObject;
  const options = objectAt(summary, "options");
  const weighting = objectAt(objectAt(options, "data"), "weighting");
  const finalEval = objectAt(summary, "final_eval");
  const model = options?.model;
  return {
    plannedSteps: numberAt(summary, "steps"),
    completedSteps: numberAt(summary, "completed_steps"),
    promptLossWeight: numberAt(summary, "prompt_loss_weight") ?? numberAt(weighting, "promptLossWeight"),
    templateLossWeight:
      numberAt(summary, "template_loss_weight") ?? numberAt(weighting, "templateLossWeight"),
    instructionOutputRatio: numberAt(summary, "instruction_output_ratio"),
    model: typeof model === "string" ? model : undefined,
    modelParameters: numberAt(summary, "model_parameters"),
    finalTrainOutputLoss: numberAt(summary, "final_train_output_loss"),
    finalHeldOutLoss: numberAt(finalEval, "eval_output_loss"),
    finalGap: numberAt(finalEval, "overfitting_gap"),
    tokensPerS: numberAt(summary, "tokens_per_s"),
    elapsedS: numberAt(summary, "elapsed_s"),
  };
}
