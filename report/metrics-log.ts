// A run's metrics.jsonl (written by coordinator/metrics-file.ts), read for a report: one JSON object a line,
// of type step, eval or checkpoint. Older runs lack some fields and whole line types; lines of a type we do
// not know are skipped, so a newer file still reads. A running job may be mid-write, so a last line that does
// not parse is skipped; any other bad line is the user's to fix and is named FILE:LINE.
import { readFileSync } from "node:fs";
import { DataError } from "../shared/errors.js";

/** A number as metrics.jsonl holds it: null where the run had NaN or ±Infinity (JSON cannot hold them). */
export type Logged = number | null;

/** The step line fields read here (by reports, gpu-check and tests); each may be absent in older runs. */
export const STEP_FIELDS = [
  "train_loss",
  "train_output_loss",
  "tokens",
  "tokens_per_s",
  "step_s",
  "tensors",
  "tensor_bytes",
] as const;
export const EVAL_FIELDS = [
  "eval_output_loss",
  "train_eval_output_loss",
  "overfitting_gap",
  "eval_s",
] as const;
export const CHECKPOINT_FIELDS = ["checkpoint_s"] as const;

type Fields<K extends string> = { readonly [key in K]?: Logged };

export type StepLine = { readonly step: number; readonly phase_s?: Fields<string> } & Fields<
  (typeof STEP_FIELDS)[number]
>;
export type EvalLine = { readonly step: number } & Fields<(typeof EVAL_FIELDS)[number]>;
export type CheckpointLine = { readonly step: number } & Fields<(typeof CHECKPOINT_FIELDS)[number]>;

export interface MetricsLog {
  readonly file: string;
  readonly steps: readonly StepLine[];
  readonly evals: readonly EvalLine[];
  readonly checkpoints: readonly CheckpointLine[];
  /** The last line did not parse and was left out (the job was writing it, or died while it did). */
  readonly skippedLastLine: boolean;
}

type JsonObject = Record<string, unknown>;

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Copies the `names` fields that are present, each a number or null; anything else is a bad line. */
function loggedFields(record: JsonObject, names: readonly string[], where: string): Record<string, Logged> {
  const fields: Record<string, Logged> = {};
  for (const name of names) {
    const value = record[name];
    if (value === undefined) continue;
    if (value !== null && typeof value !== "number") {
      throw new Error(`${where}"${name}" is ${JSON.stringify(value)}, not a number`);
    }
    fields[name] = value;
  }
  return fields;
}

function readStep(record: JsonObject): number {
  const step = record.step;
  if (typeof step !== "number" || !Number.isInteger(step) || step < 0) {
    throw new Error(`"step" is ${JSON.stringify(step)}, not a step number`);
  }
  return step;
}

function readPhases(record: JsonObject): Fields<string> | undefined {
  const phases = record.phase_s;
  if (phases === undefined) return undefined;
  if (!isObject(phases)) throw new Error(`"phase_s" is ${JSON.stringify(phases)}, not an object`);
  return loggedFields(phases, Object.keys(phases), "phase_s.");
}

export function readMetricsLog(file: string): MetricsLog {
  const lines = readFileSync(file, "utf8").split("\n");
  let last = lines.length - 1;
  while (last >= 0 && lines[last]?.trim() === "") last--;
  const steps: StepLine[] = [];
  const evals: EvalLine[] = [];
  const checkpoints: CheckpointLine[] = [];
  let skippedLastLine = false;
  for (let index = 0; index <= last; index++) {
    const text = lines[index] ?? "";
    if (text.trim() === "") continue;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch (error) {
      if (index === last) {
        skippedLastLine = true;
        break;
      }
      throw new DataError({ file, line: index + 1 }, `not JSON (${(error as Error).message})`, {
        cause: error,
      });
    }
    try {
      if (!isObject(record) || typeof record.type !== "string") throw new Error('not a record with a "type"');
      if (record.type === "step") {
        steps.push({
          step: readStep(record),
          phase_s: readPhases(record),
          ...loggedFields(record, STEP_FIELDS, ""),
        });
      } else if (record.type === "eval") {
        evals.push({ step: readStep(record), ...loggedFields(record, EVAL_FIELDS, "") });
      } else if (record.type === "checkpoint") {
        checkpoints.push({ step: readStep(record), ...loggedFields(record, CHECKPOINT_FIELDS, "") });
      }
    } catch (error) {
      throw new DataError({ file, line: index + 1 }, (error as Error).message, { cause: error });
    }
  }
  return { file, steps, evals, checkpoints, skippedLastLine };
}
