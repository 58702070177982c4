// The experiment's statistics (experiment/analysis.ts) and its report page (report/experiment-report.ts), on
// hand-made results whose answers are worked out here.
import { failureLine } from "../../experiment/child.js";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  aggregate,
  imMinusIt,
  lambdaFits,
  recommendLambda,
  regulariserEffects,
  spread,
} from "../../experiment/analysis.js";
import { recommend } from "../../experiment/recommend.js";
import { jobName } from "../../experiment/run-experiment.js";
import { JOB_NAME } from "../../shared/protocol.js";
import type { ExperimentResults, RunParams, RunResult } from "../../experiment/results.js";
import {
  EXPERIMENT_DATA_ELEMENT_ID,
  renderExperimentReport,
  writeExperimentReport,
} from "../../report/experiment-report.js";
import { tempDir } from "../support/tiny.js";

const RATIOS: Record<string, number> = { short: 0.5, long: 8 };

/** Held-out loss: 2 at IT; IM differs by 0.1 − 0.05·ln(ratio) + 0.02·ln(examples), plus a seed's ± 0.01. */
function run(
  dataset: string,
  trainExamples: number,
  promptLossWeight: number,
  seed: number,
  extra: Partial<RunParams> = {},
): RunResult {
  const params: RunParams = {
    dataset,
    trainExamples,
    promptLossWeight,
    templateLossWeight: 0,
    klWeight: 0,
    neftuneAlpha: 0,
    seed,
    ...extra,
  };
  const ratio = RATIOS[dataset] ?? 1;
  const effect = promptLossWeight * (0.1 - 0.05 * Math.log(ratio) + 0.02 * Math.log(trainExamples));
  const heldOut = 2 + effect + (seed === 1 ? 0.01 : -0.01);
  return {
    id: `${dataset}-${trainExamples}-${promptLossWeight}-${seed}-${params.klWeight}`,
    params,
    status: "done",
    instructionOutputRatio: ratio,
    finalTrainOutputLoss: 1.5 + promptLossWeight * 0.2,
    finalHeldOutOutputLoss: heldOut,
    bleu: promptLossWeight === 0 ? 20 + seed : 10 + seed,
    bleuExamples: 8,
    curve: [
      { step: 10, trainOutputLoss: 2.5, heldOutOutputLoss: 2.6 },
      { step: 20, trainOutputLoss: 1.5, heldOutOutputLoss: heldOut },
    ],
    elapsedSeconds: 3,
  };
}

function grid(withKl: boolean): RunResult[] {
  const runs: RunResult[] = [];
  for (const dataset of ["short", "long"])
    for (const size of [100, 400])
      for (const lambda of [0, 0.5, 1])
        for (const seed of [1, 2]) runs.push(run(dataset, size, lambda, seed));
  if (withKl) for (const lambda of [0, 1]) runs.push(run("long", 400, lambda, 1, { klWeight: 0.1 }));
  return runs;
}

function results(runs: RunResult[], name = "hand-made"): ExperimentResults {
  const failed: RunResult = {
    ...run("long", 100, 1, 3),
    id: "broken",
    status: "failed",
    error: "train: out of memory",
  };
  const all = [...runs, failed];
  return {
    version: 1,
    name,
    config: "test.yaml",
    generatedAt: "2026-11-24T00:00:00Z",
    baseModel: "tiny",
    runs: all,
    aggregates: aggregate(all),
    imMinusIt: imMinusIt(all),
    fits: lambdaFits(all),
  };
}

test("experiment analysis - spread is the mean and sample standard deviation, ignoring NaN", () => {
  assert.deepEqual(spread([1, 3, NaN]), { mean: 2, std: Math.SQRT2 });
  assert.deepEqual(spread([5]), { mean: 5, std: 0 });
  assert.ok(Number.isNaN(spread([]).mean));
});

test("experiment analysis - IM − IT per data set and size, and per-λ fits that recover the planted effect", () => {
  const runs = grid(false);
  const differences = imMinusIt(runs);
  assert.equal(differences.length, 4);
  const longSmall = differences.find((d) => d.dataset === "long" && d.trainExamples === 100);
  assert.ok(longSmall);
  assert.ok(Math.abs(longSmall.difference.mean - (0.1 - 0.05 * Math.log(8) + 0.02 * Math.log(100))) < 1e-12);
  assert.equal(longSmall.seeds, 2);
  const fits = lambdaFits(runs);
  assert.deepEqual(
    fits.map((f) => f.promptLossWeight),
    [0.5, 1],
  );
  const im = fits[1];
  assert.ok(im);
  assert.ok(
    Math.abs(im.intercept - 0.1) < 1e-9 &&
      Math.abs(im.perLogRatio + 0.05) < 1e-9 &&
      Math.abs(im.perLogExamples - 0.02) < 1e-9,
    JSON.stringify(im),
  );
  assert.equal(im.points, 4, "one point per (data set, size), averaged over seeds");
  // λ = 0.5 has half the effect: the best λ is 1 where the effect is negative, 0 where positive.
  assert.equal(recommendLambda(fits, 50, 100).lambda, 1);
  assert.equal(recommendLambda(fits, 0.2, 100).lambda, 0);
  const cells = aggregate(runs);
  assert.equal(cells.length, 12);
  assert.ok(
    cells.every((c) => c.seeds === 2 && Math.abs(c.heldOutOutputLoss.std - 0.01 * Math.SQRT2) < 1e-12),
  );
});

test(
  "experiment report - charts, the BLEU table, failed runs, embedded JSON, and an atomic write",
  { timeout: 60_000 },
  async () => {
    const withKl = results(grid(true), "grid </script><b>x</b>");
    const html = await renderExperimentReport(withKl);
    for (const id of ["curves", "im-it-ratio", "im-it-size", "lambda", "regularisers"])
      assert.ok(html.includes(`id="chart-${id}"`), `chart ${id}`);
    assert.equal((html.match(/<svg/g) ?? []).length, 5);
    // IT BLEU is 20 + seed, IM 10 + seed: means 21.5 and 11.5, std √0.5.
    assert.ok(html.includes("<td>21.50 ± 0.71</td><td>11.50 ± 0.71</td>"), "BLEU means over seeds");
    assert.ok(html.includes("train: out of memory"));
    assert.ok(!html.includes("</script><b>"), "the name cannot close the script element");
    const json = /<script type="application\/json" id="([^"]+)">(.*?)<\/script>/s.exec(html);
    assert.equal(json?.[1], EXPERIMENT_DATA_ELEMENT_ID);
    assert.deepEqual(JSON.parse(json?.[2] ?? "null"), JSON.parse(JSON.stringify(withKl)));
    const without = await renderExperimentReport(results(grid(false)));
    assert.ok(!without.includes('id="chart-regularisers"'), "no KL or NEFTune values: no chart for them");
    const dir = tempDir("experiment-report");
    await writeExperimentReport(withKl, join(dir, "nested", "report.html"));
    assert.ok(existsSync(join(dir, "nested", "report.html")));
    assert.deepEqual(readdirSync(join(dir, "nested")), ["report.html"]);
    const written = readFileSync(join(dir, "nested", "report.html"), "utf8");
    assert.equal((written.match(/<svg/g) ?? []).length, 5);
    assert.ok(written.includes(json?.[2] ?? "?"), "the same results embedded");
  },
);

test("experiment - a failed child is named by its error line, not the stack or Node's version line", () => {
  const crash = [
    "file:///x/dist/shared/protocol-schemas.js:103",
    "    allreduceDtype: z.enum(WIRE_DTYPES).optional(),",
    "                           ^",
    "",
    "ReferenceError: Cannot access 'WIRE_DTYPES' before initialization",
    "    at file:///x/dist/shared/protocol-schemas.js:103:28",
    "    at ModuleJob.run (node:internal/modules/esm/module_job:325:25)",
    "",
    "Node.js v20.20.2",
    "",
  ].join("\n");
  assert.equal(failureLine(crash), "ReferenceError: Cannot access 'WIRE_DTYPES' before initialization");
  assert.equal(
    failureLine("step 3/10 loss 2.1\nimtrain: --data x.jsonl:4: not JSON\n"),
    "imtrain: --data x.jsonl:4: not JSON",
  );
  assert.equal(failureLine("killed after the last step\n"), "killed after the last step");
});

test("experiment - recommend pools results files, one run per grid point: a point in two files pairs within the first", () => {
  const dir = tempDir("experiment-recommend");
  const first = join(dir, "first.json");
  const second = join(dir, "second.json");
  writeFileSync(first, JSON.stringify(results(grid(false), "first")));
  // The same grid again, its IT runs far worse: pooled naively, its IT would pair with the first's IM.
  const shifted = grid(false).map((r) =>
    r.params.promptLossWeight === 0 ? { ...r, finalHeldOutOutputLoss: r.finalHeldOutOutputLoss + 5 } : r,
  );
  writeFileSync(second, JSON.stringify(results(shifted, "second")));
  const alone = recommend([first], 50, 100);
  const pooled = recommend([first, second], 50, 100);
  assert.ok(alone && pooled);
  assert.equal(pooled.basis.runs, alone.basis.runs, "the second file's repeats are not counted again");
  assert.deepEqual(pooled.basis.experiments, ["first", "second"]);
  assert.deepEqual(pooled.predictions, alone.predictions);
});

test("experiment - a run's launch job name is one NATS subject token, distinct for distinct runs", () => {
  const ids = [
    "t0-n200-lam0.5-tw0-kl0.1-nef5-s1",
    "t0-n200-lam0_5-tw0-kl0_1-nef5-s1",
    "x".repeat(80),
    "x".repeat(81),
  ];
  const names = ids.map(jobName);
  for (const name of names) assert.match(name, JOB_NAME);
  assert.equal(jobName("t0-n200-lam1-tw0-kl0-nef5-s1"), "exp-t0-n200-lam1-tw0-kl0-nef5-s1");
  assert.match(names[0] ?? "", /^exp-t0-n200-lam0_5-tw0-kl0_1-nef5-s1-[0-9a-f]{8}$/);
  assert.equal(new Set(names).size, names.length, "replaced or cut ids keep a hash of the whole id");
});

test("experiment analysis - KL and NEFTune effects are paired by seed, cancelling the seeds' spread", async () => {
  const runs: RunResult[] = [];
  for (const seed of [1, 2, 3])
    for (const [klWeight, neftuneAlpha, effect] of [
      [0, 0, 0],
      [0.1, 0, -0.004],
      [0, 5, -0.006],
    ] as const) {
      const base = run("long", 200, 1, seed, { klWeight, neftuneAlpha });
      // A seed moves every run of it by the same large amount; the regulariser moves only its own runs.
      const heldOut = 2 + 0.1 * seed + effect;
      runs.push({ ...base, finalHeldOutOutputLoss: heldOut, finalTrainOutputLoss: heldOut - 0.1 - effect });
    }
  const effects = regulariserEffects(runs);
  assert.deepEqual(
    effects.map((e) => [e.params.klWeight, e.params.neftuneAlpha, e.seeds]),
    [
      [0.1, 0, 3],
      [0, 5, 3],
    ],
  );
  for (const [e, planted] of [
    [effects[0], -0.004],
    [effects[1], -0.006],
  ] as const) {
    assert.ok(Math.abs((e?.heldOut.mean ?? NaN) - planted) < 1e-9, JSON.stringify(e));
    assert.ok((e?.heldOut.std ?? NaN) < 1e-9, "pairs cancel the seeds' spread");
    assert.ok(Math.abs((e?.gap.mean ?? NaN) - planted) < 1e-9, JSON.stringify(e));
  }
  const html = await renderExperimentReport(results(runs));
  assert.ok(html.includes("paired by seed"));
  assert.ok(html.includes("<td>-0.0040 ± 0.0000</td>"), "the KL row's held-out difference");
  assert.deepEqual(regulariserEffects(grid(false)), [], "no KL or NEFTune: nothing to pair");
});
