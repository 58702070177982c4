import assert from "node:assert/strict";
import { readFileSync, renameSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseTrainFlags } from "../../cli/flags.js";
import { runTrainJob } from "../../coordinator/train-job.js";
import { loadCheckpoint } from "../../shared/model/checkpoint.js";
import { compileTrainOptions } from "../../shared/options.js";
import { assertSteadyMemory, stepLosses } from "../support/same-run.js";
import { tempDir, writeSyntheticData } from "../support/tiny.js";

const dir = tempDir("resume");
const data = writeSyntheticData(dir, 40);
const quiet = () => {};

/** The run's flags; a flag in `extra` replaces the default one. */
function flags(out: string, extra: string[] = [], steps = "6") {
  const defaults = [
    ...["--data", data, "--steps", steps, "--batch-size", "4", "--micro-batch-size", "2"],
    ...[
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
    ],
  ];
  const given = new Set(extra.filter((arg) => arg.startsWith("--")));
  const kept = defaults.flatMap((arg, i) =>
    i % 2 === 0 && !given.has(arg) ? [arg, defaults[i + 1] ?? ""] : [],
  );
  return compileTrainOptions(parseTrainFlags([...kept, ...extra]));
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

/** Trains `out` to step `stopAt` of 6 (a checkpoint then), as a stopped run leaves it. */
async function stoppedRun(out: string, stopAt: number, extra: string[] = []): Promise<void> {
  const stop = new AbortController();
  await runTrainJob(flags(out, extra), quiet, {
    signal: stop.signal,
    onStep: (record) => record.step === stopAt && stop.abort(),
  });
}

/** Fails unless `other` ended with `reference`'s weights and losses, to the bit. */
async function assertIdentical(reference: string, other: string): Promise<void> {
  const a = await loadCheckpoint(join(reference, "checkpoint"));
  const b = await loadCheckpoint(join(other, "checkpoint"));
  for (const [name, values] of a.weights) assert.deepEqual(b.weights.get(name), values, name);
  assert.deepEqual(stepLosses(other), stepLosses(reference));
}

test("resume - with --kl-weight the KL reference stays the starting model, so a resumed run is the straight run", async () => {
  const straight = join(dir, "kl-straight");
  await runTrainJob(flags(straight, ["--kl-weight", "0.5"]), quiet);
  const interrupted = join(dir, "kl-interrupted");
  await stoppedRun(interrupted, 3, ["--kl-weight", "0.5"]);
  await runTrainJob(flags(interrupted, ["--kl-weight", "0.5", "--resume", interrupted]), quiet);
  await assertIdentical(straight, interrupted);
});

test("resume - a run trained differently is refused with one message naming each difference", async () => {
  const out = join(dir, "changed");
  await stoppedRun(out, 2);
  const otherData = writeSyntheticData(join(dir, "other-data"), 40, 7);
  const changes: [string[], RegExp][] = [
    [["--batch-size", "8"], /--batch-size: 4 in the run, 8 now/],
    [["--lr", "0.01"], /--lr: 0\.001 in the run, 0\.01 now/],
    [["--data", otherData], /the encoded data \(a different data file/],
    [["--model", "small"], /--model: tiny in the run, small now/],
    [["--loss-mode", "it"], /--prompt-loss-weight: 1 in the run, 0 now/],
    [["--kl-weight", "0.1"], /--kl-weight: 0 in the run, 0\.1 now/],
  ];
  for (const [change, named] of changes)
    await assert.rejects(runTrainJob(flags(out, ["--resume", out, ...change]), quiet), (error: Error) => {
      assert.match(error.message, /^cannot resume from .*checkpoint: its run was trained differently/);
      assert.match(error.message, named, change.join(" "));
      return true;
    });
  // Every difference at once, in one message.
  await assert.rejects(
    runTrainJob(flags(out, ["--resume", out, "--batch-size", "8", "--lr", "0.01"]), quiet),
    /--batch-size: 4 in the run, 8 now; --lr: 0\.001 in the run, 0\.01 now/,
  );
});

test("resume - a truncated, bit-flipped or half-swapped newest checkpoint is skipped; an older whole one continues the run", async () => {
  const straight = join(dir, "straight");
  const damage: [string, (checkpoint: string) => void][] = [
    ["truncated", (c) => truncateSync(join(c, "model.safetensors"), 1000)],
    [
      "bit-flipped",
      (c) => {
        const file = join(c, "optimizer.safetensors");
        const bytes = readFileSync(file);
        bytes[bytes.length - 5] = (bytes[bytes.length - 5] ?? 0) ^ 0x10;
        writeFileSync(file, bytes);
      },
    ],
  ];
  for (const [what, harm] of damage) {
    const out = join(dir, `damaged-${what}`);
    await stoppedRun(out, 5, ["--checkpoint-every", "2"]); // keeps checkpoint (step 5) and checkpoint.step-4
    assert.equal((await loadCheckpoint(join(out, "checkpoint.step-4"))).trainer?.step, 4);
    harm(join(out, "checkpoint"));
    const lines: string[] = [];
    await runTrainJob(flags(out, ["--resume", out]), (line) => lines.push(line));
    assert.ok(
      lines.some((line) => /skipping checkpoint .*checkpoint: .*(truncated|corrupted)/.test(line)),
      `${what}: ${lines.join("\n")}`,
    );
    await assertIdentical(straight, out);
  }
  // A crash between the two renames of a save leaves checkpoint.previous and no checkpoint.
  const out = join(dir, "half-swapped");
  await stoppedRun(out, 3);
  renameSync(join(out, "checkpoint"), join(out, "checkpoint.previous"));
  await runTrainJob(flags(out, ["--resume", out]), quiet);
  await assertIdentical(straight, out);
});

test("memory - 300 steps: the live tensors and their bytes at step 300 are those at step 20 (nothing leaks)", async () => {
  const out = join(dir, "steady");
  await runTrainJob(
    flags(out, ["--kl-weight", "0.1", "--eval-every", "50", "--checkpoint-every", "100"], "300"),
    quiet,
  );
  assertSteadyMemory(out, 20, 300);
});
