// What the paper's tables and figures are computed from: means and spread over seeds, IM − IT held-out loss
// per data set and size, and per λ a least-squares fit of the held-out difference from IT on ln(ratio) and
// ln(examples) (the relationship `imtrain analyze` recommends a λ from).
import type { Aggregate, ImMinusIt, LambdaFit, RunParams, RunResult, Spread } from "./results.js";

export function spread(values: readonly number[]): Spread {
  const finite = values.filter(Number.isFinite);
  const n = finite.length;
  if (n === 0) return { mean: NaN, std: NaN };
  const mean = finite.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? finite.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, std: Math.sqrt(variance) };
}

type Cell = Omit<RunParams, "seed">;

/** The grid cell a run belongs to: every knob but the seed. */
export function cellKey(p: Cell): string {
  return JSON.stringify([
    p.dataset,
    p.trainExamples,
    p.promptLossWeight,
    p.templateLossWeight,
    p.klWeight,
    p.neftuneAlpha,
  ]);
}

export function aggregate(runs: readonly RunResult[]): Aggregate[] {
  const cells = new Map<string, RunResult[]>();
  for (const run of runs.filter((r) => r.status === "done")) {
    const key = cellKey(run.params);
    cells.set(key, [...(cells.get(key) ?? []), run]);
  }
  return [...cells.values()].map((group) => {
    const { seed: _, ...params } = (group[0] as RunResult).params;
    return {
      params,
      seeds: group.length,
      heldOutOutputLoss: spread(group.map((r) => r.finalHeldOutOutputLoss)),
      trainOutputLoss: spread(group.map((r) => r.finalTrainOutputLoss)),
      bleu: spread(group.map((r) => r.bleu)),
      instructionOutputRatio: spread(group.map((r) => r.instructionOutputRatio)).mean,
    };
  });
}

/**
 * The runs at the base values of the knobs other than λ and size: the smallest in the grid (0 for KL and
 * NEFTune, as in plain IT/IM).
 */
export function atBaseKnobs(runs: readonly RunResult[]): RunResult[] {
  const min = (pick: (p: RunParams) => number) => Math.min(...runs.map((r) => pick(r.params)));
  const [templateLossWeight, klWeight, neftuneAlpha] = [
    min((p) => p.templateLossWeight),
    min((p) => p.klWeight),
    min((p) => p.neftuneAlpha),
  ];
  return runs.filter(
    (r) =>
      r.params.templateLossWeight === templateLossWeight &&
      r.params.klWeight === klWeight &&
      r.params.neftuneAlpha === neftuneAlpha,
  );
}

/** Held-out loss at λ minus at λ = 0, per (data set, size, seed) with both, at the base knobs. */
function differencesFromIt(runs: readonly RunResult[], lambda: number) {
  const atBase = atBaseKnobs(runs.filter((r) => r.status === "done"));
  const key = (p: RunParams) => JSON.stringify([p.dataset, p.trainExamples, p.seed]);
  const it = new Map(atBase.filter((r) => r.params.promptLossWeight === 0).map((r) => [key(r.params), r]));
  return atBase
    .filter((r) => r.params.promptLossWeight === lambda)
    .flatMap((r) => {
      const reference = it.get(key(r.params));
      return reference === undefined
        ? []
        : [{ run: r, difference: r.finalHeldOutOutputLoss - reference.finalHeldOutOutputLoss }];
    });
}

export interface RegulariserEffect {
  /** The knobs with KL or NEFTune on (the seed aside). */
  readonly params: Cell;
  /** Held-out output loss minus the same run's without KL and NEFTune (same seed, data, λ). */
  readonly heldOut: Spread;
  /** (Held-out − train output loss) minus the same run's without them: below 0, less overfitting. */
  readonly gap: Spread;
  readonly seeds: number;
}

/**
 * KL-to-base and NEFTune against neither, paired by seed: each run with a KL weight or NEFTune α above the
 * grid's smallest, less the run of the same data set, size, λ, template weight and seed without them.
 * Seeds share their data split, so the pairs cancel most of the seed-to-seed spread.
 */
export function regulariserEffects(runs: readonly RunResult[]): RegulariserEffect[] {
  const done = runs.filter((r) => r.status === "done");
  if (done.length === 0) return [];
  const leastKl = Math.min(...done.map((r) => r.params.klWeight));
  const leastNeftune = Math.min(...done.map((r) => r.params.neftuneAlpha));
  const plainKey = (p: RunParams) =>
    JSON.stringify([p.dataset, p.trainExamples, p.promptLossWeight, p.templateLossWeight, p.seed]);
  const plain = new Map(
    done
      .filter((r) => r.params.klWeight === leastKl && r.params.neftuneAlpha === leastNeftune)
      .map((r) => [plainKey(r.params), r]),
  );
  const gapOf = (r: RunResult) => r.finalHeldOutOutputLoss - r.finalTrainOutputLoss;
  const cells = new Map<string, { run: RunResult; heldOut: number; gap: number }[]>();
  for (const run of done) {
    const reference = plain.get(plainKey(run.params));
    if (reference === undefined || reference === run) continue;
    const key = cellKey(run.params);
    cells.set(key, [
      ...(cells.get(key) ?? []),
      {
        run,
        heldOut: run.finalHeldOutOutputLoss - reference.finalHeldOutOutputLoss,
        gap: gapOf(run) - gapOf(reference),
      },
    ]);
  }
  return [...cells.values()].map((pairs) => {
    const { seed: _seed, ...params } = (pairs[0] as { run: RunResult }).run.params;
    return {
      params,
      heldOut: spread(pairs.map((p) => p.heldOut)),
      gap: spread(pairs.map((p) => p.gap)),
      seeds: pairs.length,
    };
  });
}

/** Per data set and size: IM − IT held-out output loss over seeds. */
export function imMinusIt(runs: readonly RunResult[]): ImMinusIt[] {
  const groups = new Map<string, { run: RunResult; difference: number }[]>();
  for (const d of differencesFromIt(runs, 1)) {
    const key = JSON.stringify([d.run.params.dataset, d.run.params.trainExamples]);
    groups.set(key, [...(groups.get(key) ?? []), d]);
  }
  return [...groups.values()].map((group) => {
    const first = (group[0] as { run: RunResult }).run;
    return {
      dataset: first.params.dataset,
      trainExamples: first.params.trainExamples,
      instructionOutputRatio: spread(group.map((d) => d.run.instructionOutputRatio)).mean,
      difference: spread(group.map((d) => d.difference)),
      seeds: group.length,
    };
  });
}

/** Least squares of y on [1, x1, x2]; a predictor with no spread gets a zero coefficient. */
function fitPlane(points: readonly { x1: number; x2: number; y: number }[]) {
  const n = points.length;
  const mean = (f: (p: (typeof points)[number]) => number) => points.reduce((a, p) => a + f(p), 0) / n;
  const [m1, m2, my] = [mean((p) => p.x1), mean((p) => p.x2), mean((p) => p.y)];
  const s = (f: (p: (typeof points)[number]) => number) => points.reduce((a, p) => a + f(p), 0);
  const s11 = s((p) => (p.x1 - m1) ** 2);
  const s22 = s((p) => (p.x2 - m2) ** 2);
  const s12 = s((p) => (p.x1 - m1) * (p.x2 - m2));
  const s1y = s((p) => (p.x1 - m1) * (p.y - my));
  const s2y = s((p) => (p.x2 - m2) * (p.y - my));
  const det = s11 * s22 - s12 * s12;
  let b1 = 0;
  let b2 = 0;
  if (Math.abs(det) > 1e-12) {
    b1 = (s1y * s22 - s2y * s12) / det;
    b2 = (s2y * s11 - s1y * s12) / det;
  } else if (s11 > 1e-12) b1 = s1y / s11;
  else if (s22 > 1e-12) b2 = s2y / s22;
  const intercept = my - b1 * m1 - b2 * m2;
  const total = s((p) => (p.y - my) ** 2);
  const residual = s((p) => (p.y - intercept - b1 * p.x1 - b2 * p.x2) ** 2);
  // R² is undefined when every point has the same difference (one data set and size, say).
  return { intercept, b1, b2, rSquared: total > 0 ? 1 - residual / total : NaN };
}

/**
 * Per λ > 0 of the grid: the held-out difference from IT, averaged over seeds per (data set, size), against
 * ln(ratio) and ln(examples). A data set's ratio is its mean over runs: the seeds' subsets differ in ratio a
 * little, and fitting that noise would invent a slope. With one data set (or one size) that slope is 0.
 */
export function lambdaFits(runs: readonly RunResult[]): LambdaFit[] {
  const lambdas = [...new Set(runs.map((r) => r.params.promptLossWeight))].filter((l) => l > 0).sort();
  const ratioOf = new Map<string, number>();
  for (const dataset of new Set(runs.map((r) => r.params.dataset)))
    ratioOf.set(
      dataset,
      spread(runs.filter((r) => r.params.dataset === dataset).map((r) => r.instructionOutputRatio)).mean,
    );
  return lambdas.flatMap((lambda) => {
    const cells = new Map<string, { dataset: string; examples: number; differences: number[] }>();
    for (const d of differencesFromIt(runs, lambda)) {
      const key = JSON.stringify([d.run.params.dataset, d.run.params.trainExamples]);
      const cell = cells.get(key) ?? {
        dataset: d.run.params.dataset,
        examples: d.run.params.trainExamples,
        differences: [],
      };
      cell.differences.push(d.difference);
      cells.set(key, cell);
    }
    const points = [...cells.values()]
      .map((cell) => ({
        x1: Math.log(ratioOf.get(cell.dataset) ?? NaN),
        x2: Math.log(cell.examples),
        y: spread(cell.differences).mean,
      }))
      .filter((p) => Number.isFinite(p.x1) && Number.isFinite(p.y));
    if (points.length === 0) return [];
    const fit = fitPlane(points);
    return [
      {
        promptLossWeight: lambda,
        intercept: fit.intercept,
        perLogRatio: fit.b1,
        perLogExamples: fit.b2,
        points: points.length,
        rSquared: fit.rSquared,
      },
    ];
  });
}

/** The λ whose fitted held-out difference from IT is lowest for this ratio and size (0 if none beats IT). */
export function recommendLambda(fits: readonly LambdaFit[], ratio: number, examples: number) {
  const predictions = fits.map((fit) => ({
    lambda: fit.promptLossWeight,
    difference: fit.intercept + fit.perLogRatio * Math.log(ratio) + fit.perLogExamples * Math.log(examples),
  }));
  const best = predictions.reduce((a, b) => (b.difference < a.difference ? b : a), {
    lambda: 0,
    difference: 0,
  });
  return { lambda: best.lambda, predictedDifference: best.difference, predictions };
}
