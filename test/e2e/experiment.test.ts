// `imtrain experiment` end to end on a tiny grid (synthetic data, a micro model): the same code the shipped
// configs run. Pretraining, nested splits, every run trained and scored, results.json and report.html,
// and a rerun that redoes only what a Ctrl-C left unfinished. Also: every config in experiments/ reads.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { readExperimentConfig, gridRuns, runId } from "../../experiment/config.js";
import type { ExperimentResults } from "../../experiment/results.js";
import { runCli, startCli } from "../support/cli.js";
import { repoRoot, sharedDataDir } from "../support/shared-data.js";
import { tempDir, writeMicroModelConfig } from "../support/tiny.js";

const dir = tempDir("experiment");
const micro = writeMicroModelConfig(dir);

function writeConfig(name: string, extra = ""): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}
datasets:
  short-prompts:
    synth: { examples: 40, instruction_words: 6, output_words: 6, seed: 1 }
  long-prompts:
    synth: { examples: 40, instruction_words: 20, output_words: 2, seed: 2 }
  pretrain-text:
    synth: { examples: 60, instruction_words: 10, output_words: 4, seed: 3 }
held_out_examples: 8
model: ${micro}
pretrain:
  model: ${micro}
  steps: 4
  datasets: [pretrain-text]
  train: { batch-size: 4 }
train:
  steps: 4
  batch-size: 4
  eval-every: 2
  context-length: 96
  lr: 0.003
grid:
  train_examples: [8, 16]
  prompt_loss_weight: [0, 1]
  seed: [1]
bleu: { examples: 4, max_new_tokens: 6 }
run_timeout_s: 120
${extra}`,
  );
  return file;
}

test(
  "experiment - a tiny grid runs end to end: pretrain, nested splits, every run trained and scored, results and report",
  { timeout: 300_000 },
  async () => {
    const config = writeConfig("tiny-grid");
    const out = join(dir, "tiny-grid");
    // Two runs at once (the rerun below goes one at a time): the results are listed in grid order.
    const first = await runCli(["experiment", "--config", config, "--out", out, "--parallel-runs", "2"]);
    assert.equal(first.status, 0, first.stderr.slice(-3000));
    assert.match(first.stderr, /pretraining the base model: .* on pretrain-text \(60 examples\)/);
    const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as ExperimentResults;
    assert.equal(results.runs.length, 8);
    assert.deepEqual(
      results.runs.map((run) => run.id),
      gridRuns(readExperimentConfig(config)).map(runId),
    );
    // Inside the experiment's folder, so the results read the same wherever the folder is copied.
    assert.equal(results.baseModel, join("pretrain", "checkpoint"));
    for (const run of results.runs) {
      assert.equal(run.status, "done", run.error);
      assert.ok(run.curve.length >= 2, `${run.id}: evals at steps 2 and 4`);
      assert.ok(run.bleu >= 0 && run.bleu <= 100, `${run.id}: BLEU ${run.bleu}`);
      assert.equal(run.bleuExamples, 4);
      const log = readFileSync(join(out, "runs", run.id, "experiment.log"), "utf8");
      assert.ok(
        log.includes(`--model ${join(out, results.baseModel)}`),
        "fine-tuned from the pretrained base",
      );
    }
    // IM − IT for each data set and size, and a fit over them for λ = 1.
    assert.equal(results.imMinusIt.length, 4);
    assert.deepEqual(
      results.fits.map((f) => [f.promptLossWeight, f.points]),
      [[1, 4]],
    );
    const ratios = new Map(results.imMinusIt.map((d) => [d.dataset, d.instructionOutputRatio]));
    assert.ok((ratios.get("long-prompts") ?? 0) > (ratios.get("short-prompts") ?? Infinity));
    // The 8 training examples are the first 8 of the 16; the held-out file is one per data set and seed.
    const split = join(out, "data", "long-prompts", "seed-1");
    const lines = (file: string) => readFileSync(join(split, file), "utf8").trim().split("\n");
    assert.deepEqual(lines("train-8.jsonl"), lines("train-16.jsonl").slice(0, 8));
    assert.equal(lines("held-out.jsonl").length, 8);
    assert.ok(!lines("train-16.jsonl").some((line) => lines("held-out.jsonl").includes(line)));
    const report = readFileSync(join(out, "report.html"), "utf8");
    assert.ok((report.match(/<svg/g) ?? []).length >= 3, "the report draws its charts");

    // analyze recommends λ from these results: the fitted difference from IT at the data's ratio and size.
    const data = join(out, "data", "long-prompts.jsonl");
    const analyzed = await runCli([
      "analyze",
      "--data",
      data,
      "--results",
      join(out, "results.json"),
      "--json",
    ]);
    assert.equal(analyzed.status, 0, analyzed.stderr);
    const analysis = JSON.parse(analyzed.stdout) as {
      instruction_output_ratio: number;
      examples: number;
      recommendation: { promptLossWeight: number; predictedDifference: number; basis: { runs: number } };
    };
    const [fit] = results.fits;
    assert.ok(fit);
    const predicted =
      fit.intercept +
      fit.perLogRatio * Math.log(analysis.instruction_output_ratio) +
      fit.perLogExamples * Math.log(analysis.examples);
    assert.equal(analysis.recommendation.promptLossWeight, predicted < 0 ? 1 : 0);
    assert.equal(analysis.recommendation.basis.runs, 8);
    const text = await runCli(["analyze", "--data", data, "--results", join(out, "results.json")]);
    assert.match(
      text.stdout,
      /recommended λ {3}--prompt-loss-weight [01] .*\n.*fitted held-out output loss vs IT.*\n.*based on 8 runs of tiny-grid/,
    );

    // A rerun finds everything done and runs nothing.
    const again = await runCli(["experiment", "--config", config, "--out", out]);
    assert.equal(again.status, 0, again.stderr.slice(-3000));
    assert.match(again.stderr, /8 runs \(8 already done\)/);
    assert.doesNotMatch(again.stderr, /\[\d+\/8\]/);
  },
);

test(
  "experiment - Ctrl-C mid-grid keeps the finished runs; the rerun redoes only the unfinished one",
  { timeout: 300_000 },
  async () => {
    const config = writeConfig("interrupted");
    const out = join(dir, "interrupted");
    const first = startCli(["experiment", "--config", config, "--out", out]);
    await first.waitFor(/\[2\/8\]/, 120_000);
    first.child.kill("SIGINT");
    assert.notEqual(await first.exit, 0);
    assert.match(first.stderr, /SIGINT: stopping the runs in flight; rerun the same command to continue/);
    const done = readdirSync(join(out, "runs")).filter((id) =>
      existsSync(join(out, "runs", id, "bleu.json")),
    );
    assert.ok(done.length >= 2 && done.length < 8, `finished before the signal: ${done.join(", ")}`);
    const second = await runCli(["experiment", "--config", config, "--out", out]);
    assert.equal(second.status, 0, second.stderr.slice(-3000));
    assert.match(second.stderr, new RegExp(`8 runs \\(${done.length} already done\\)`));
    const redone = second.stderr.match(/\[\d+\/8\]/g) ?? [];
    assert.equal(redone.length, 8 - done.length, second.stderr);
  },
);

test("experiment - a bad config is one line naming the file and line, before anything runs", async () => {
  const badWeight = writeConfig("bad-weight").replace("bad-weight", "bad-weight");
  writeFileSync(
    badWeight,
    readFileSync(badWeight, "utf8").replace("prompt_loss_weight: [0, 1]", "prompt_loss_weight: [0, 2]"),
  );
  const result = await runCli(["experiment", "--config", badWeight, "--out", join(dir, "never")]);
  assert.equal(result.status, 2);
  assert.match(
    result.stderr.trim(),
    /^imtrain: --config .*bad-weight\.yaml:\d+: grid\.prompt_loss_weight\.1: .*1/,
  );
  assert.ok(!existsSync(join(dir, "never")));
  const seedInTrain = writeConfig("seed-in-train");
  writeFileSync(
    seedInTrain,
    readFileSync(seedInTrain, "utf8").replace("  lr: 0.003", "  lr: 0.003\n  seed: 4"),
  );
  const second = await runCli(["experiment", "--config", seedInTrain, "--out", join(dir, "never")]);
  assert.equal(second.status, 2);
  assert.match(second.stderr.trim(), /train\.seed: the experiment sets --seed for each run itself$/);
});

test("experiment - every config in experiments/ reads, and its data sets exist where ../shared/data is", (t) => {
  const folder = join(repoRoot(), "experiments");
  const files = readdirSync(folder).filter((f) => f.endsWith(".yaml"));
  assert.ok(files.length >= 7, files.join(", "));
  const data = sharedDataDir(t);
  for (const file of files) {
    const config = readExperimentConfig(join(folder, file));
    assert.ok(gridRuns(config).length > 0, file);
    if (data === undefined) continue;
    for (const [name, source] of config.datasets)
      if (source.kind === "file") assert.ok(existsSync(source.file), `${file}: ${name}: ${source.file}`);
  }
});
