import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseTrainFlags } from "../../cli/flags.js";
import { runTrainJob } from "../../coordinator/train-job.js";
import { loadCheckpoint } from "../../shared/model/checkpoint.js";
import { compileTrainOptions } from "../../shared/options.js";
import { stepLosses } from "../support/same-run.js";
import { tempDir, writeSyntheticData } from "../support/tiny.js";

const dir = tempDir("resume");
const data = writeSyntheticData(dir, 40);
const quiet = () => {};

function flags(out: string, extra: string[] = [], steps = "6") {
  return compileTrainOptions(
    parseTrainFlags([
      "--data",
      data,
      "--steps",
      steps,
      "--batch-size",
      "4",
      "--micro-batch-size",
      "2",
      "--loss-mode",
      "im",
      "--neftune-alpha",
      "5",
      "--backend",
      "wasm",
      "--warmup-steps",
      "2",
      "--out",
      out,
      ...extra,
    ]),
  );
}

test("resume - stopping after step 3 and resuming gives bit-identical weights, optimizer state and losses", async () => {
  const straight = join(dir, "straight");
  await runTrainJob(flags(straight), quiet);

  const interrupted = join(dir, "interrupted");
  const stop = new AbortController();
  const first = await runTrainJob(flags(interrupted), quiet, {
    signal: stop.signal,
    onStep: (record) => record.step === 3 && stop.abort(),
  });
  assert.equal(first.completed_steps, 3);
  assert.equal((await loadCheckpoint(join(interrupted, "checkpoint"))).trainer?.step, 3);
  const second = await runTrainJob(flags(interrupted, ["--resume", interrupted]), quiet);
  assert.equal(second.completed_steps, 6);

  const a = await loadCheckpoint(join(straight, "checkpoint"));
  const b = await loadCheckpoint(join(interrupted, "checkpoint"));
  for (const [name, values] of a.weights) assert.deepEqual(b.weights.get(name), values, name);
  for (const [name, values] of a.optimizer ?? []) assert.deepEqual(b.optimizer?.get(name), values, name);
  // metrics.jsonl holds each step once, in order, with the same losses.
  assert.deepEqual(stepLosses(interrupted), stepLosses(straight));
  assert.equal(stepLosses(straight).length, 6);
});

test("resume - a different seed is refused, naming --seed", async () => {
  const out = join(dir, "seeded");
  await runTrainJob(flags(out, [], "1"), quiet);
  await assert.rejects(runTrainJob(flags(out, ["--resume", out, "--seed", "5"], "1"), quiet), /--seed/);
});

test("checkpoint - round trip keeps config, weights and tokenizer", async () => {
  const out = join(dir, "straight", "checkpoint");
  const checkpoint = await loadCheckpoint(out);
  assert.equal(checkpoint.tokenizer, "byte");
  assert.equal(checkpoint.config.vocabSize, 257);
  const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as Record<string, unknown>;
  assert.equal(config["model_type"], "gpt2");
  assert.equal(config["n_embd"], checkpoint.config.embedDim);
});

test("checkpoint - --checkpoint-every-minutes saves by time during the run, and the run is unchanged", async () => {
  const out = join(dir, "timed");
  // 1 ms: every step is "due"; the time schedule must not change what is trained.
  await runTrainJob(flags(out, ["--checkpoint-every-minutes", String(1 / 60_000)]), quiet);
  const checkpoints = readFileSync(join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { type: string; step: number })
    .filter((line) => line.type === "checkpoint")
    .map((line) => line.step);
  assert.deepEqual(checkpoints, [1, 2, 3, 4, 5, 6]);
  const untimed = join(dir, "untimed");
  await runTrainJob(flags(untimed, ["--checkpoint-every-minutes", "0"]), quiet);
  const a = await loadCheckpoint(join(out, "checkpoint"));
  const b = await loadCheckpoint(join(untimed, "checkpoint"));
  for (const [name, values] of a.weights) assert.deepEqual(b.weights.get(name), values, name);
});
