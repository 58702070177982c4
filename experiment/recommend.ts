// `imtrain analyze` recommends a prompt-loss weight λ from measured results: the fits of the held-out output-
// loss difference from IT (analysis.ts) over every run of the results files given (by default the ones this
// repository ships, experiments/results/*/results.json), evaluated at the data set's ratio and size.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DataError } from "../shared/errors.js";
import { cellKey, lambdaFits, recommendLambda } from "./analysis.js";
import type { ExperimentResults, LambdaFit, RunResult } from "./results.js";

/** A λ is recommended from only if its fit rests on this many (data set, size) cells: one cell is no trend. */
export const MIN_FIT_POINTS = 3;

export const SHIPPED_RESULTS_DIR = fileURLToPath(new URL("../../experiments/results/", import.meta.url));

export interface Recommendation {
  readonly promptLossWeight: number;
  /** Fitted held-out output loss at that λ minus at λ = 0 (negative: better than IT). */
  readonly predictedDifference: number;
  readonly predictions: readonly { readonly lambda: number; readonly difference: number }[];
  /** What it rests on, in words and numbers. */
  readonly basis: {
    readonly files: readonly string[];
    readonly experiments: readonly string[];
    readonly runs: number;
    readonly ratios: readonly [number, number];
    readonly trainExamples: readonly [number, number];
    readonly fits: readonly LambdaFit[];
  };
}

/** The results files shipped with imtrain (none in a checkout without them). */
export function shippedResults(): string[] {
  if (!existsSync(SHIPPED_RESULTS_DIR)) return [];
  return readdirSync(SHIPPED_RESULTS_DIR)
    .map((name) => join(SHIPPED_RESULTS_DIR, name, "results.json"))
    .filter((file) => existsSync(file));
}

function readResults(file: string): ExperimentResults {
  try {
    const results = JSON.parse(readFileSync(file, "utf8")) as ExperimentResults;
    if (!Array.isArray(results.runs)) throw new Error("no runs");
    return results;
  } catch (error) {
    throw new DataError({ file, line: 1 }, `not an experiment's results.json (${(error as Error).message})`);
  }
}

/**
 * One run per grid point (data set, size, λ, template weight, KL, NEFTune, seed): two experiments that both
 * ran a point (say IT on Claude Alpaca in its own experiment and as the regularisers' baseline) would
 * otherwise pair one's IT with the other's IM. The first file's run is kept.
 */
function firstOfEach(runs: readonly RunResult[]): RunResult[] {
  const seen = new Set<string>();
  return runs.filter((run) => {
    const key = `${cellKey(run.params)} seed ${run.params.seed}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** undefined when the files hold no run pair (IT and another λ at the same point) to fit. */
export function recommend(
  files: readonly string[],
  ratio: number,
  examples: number,
): Recommendation | undefined {
  const all = files.map(readResults);
  // JSON has no NaN: a failed run's numbers come back as null.
  const runs = firstOfEach(all.flatMap((r) => r.runs).filter((run) => run.status === "done"));
  const fits = lambdaFits(runs).filter((fit) => fit.points >= MIN_FIT_POINTS);
  if (fits.length === 0) return undefined;
  const best = recommendLambda(fits, ratio, examples);
  const range = (values: number[]): [number, number] => [Math.min(...values), Math.max(...values)];
  return {
    promptLossWeight: best.lambda,
    predictedDifference: best.predictedDifference,
    predictions: best.predictions,
    basis: {
      files,
      experiments: all.map((r) => r.name),
      runs: runs.length,
      ratios: range(runs.map((r) => r.instructionOutputRatio)),
      trainExamples: range(runs.map((r) => r.params.trainExamples)),
      fits,
    },
  };
}
