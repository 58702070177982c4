// Each command through the real CLI, in a child process, on tiny synthetic data: what it prints, what it
// writes, and the figures it reports. Runs are kept to a few steps of the tiny model on wasm.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { tempDir, writeSyntheticData } from "../support/tiny.js";
import { installed } from "../support/gpu.js";
import { runCliSync, type CliRun } from "../support/cli.js";

const dir = tempDir("cli-commands");
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** 20 short Alpaca records shared by the tests that only read data. */
const DATA = writeSyntheticData(dir, 20, 1, "data.jsonl");
const TINY = ["--model", "tiny", "--backend", "wasm"];

let dirCount = 0;
function fresh(name: string): string {
  dirCount++;
  return path.join(dir, `${dirCount}-${name}`);
}

type CliResult = CliRun;

function runCli(args: readonly string[]): CliResult {
  return runCliSync(args, dir);
}

function shown(result: CliResult): string {
  return `exit ${String(result.status)}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

/** Runs the CLI and fails the test, showing its output, unless it exits 0. */
function ok(args: readonly string[]): CliResult {
  const result = runCli(args);
  assert.equal(result.status, 0, shown(result));
  return result;
}

function nonEmptyLines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

function parseObject(text: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text);
  assert.ok(typeof value === "object" && value !== null && !Array.isArray(value), `not an object: ${text}`);
  return value as Record<string, unknown>;
}

function jsonLines(text: string): Record<string, unknown>[] {
  return nonEmptyLines(text).map(parseObject);
}

function readJson(file: string): Record<string, unknown> {
  return parseObject(fs.readFileSync(file, "utf8"));
}

/** `record[key]`, asserted to be a finite number. */
function num(record: Record<string, unknown>, key: string): number {
  const value = record[key];
  assert.ok(
    typeof value === "number" && Number.isFinite(value),
    `${key} should be a finite number in ${JSON.stringify(record)}`,
  );
  return value;
}

function field(record: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = record[key];
  assert.ok(
    typeof value === "object" && value !== null,
    `${key} should be an object: ${JSON.stringify(record)}`,
  );
  return value as Record<string, unknown>;
}

interface Metrics {
  readonly steps: Record<string, unknown>[];
  readonly evals: Record<string, unknown>[];
}

function readMetrics(out: string): Metrics {
  const records = jsonLines(fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8"));
  return {
    steps: records.filter((r) => r.type === "step"),
    evals: records.filter((r) => r.type === "eval"),
  };
}

/** Exit 2 and exactly one `imtrain: …` line, the last on stderr, mentioning each of `mentions`, no stack. */
function assertUserError(result: CliResult, ...mentions: string[]): void {
  assert.equal(result.status, 2, shown(result));
  assert.ok(!result.stderr.includes("    at "), `no stack trace expected; ${shown(result)}`);
  const lines = nonEmptyLines(result.stderr);
  const errors = lines.filter((line) => line.startsWith("imtrain: "));
  assert.equal(errors.length, 1, shown(result));
  assert.equal(lines.at(-1), errors[0], `the error should be the last line; ${shown(result)}`);
  for (const mention of mentions) {
    assert.ok(errors[0]?.includes(mention), `the error should mention "${mention}"; ${shown(result)}`);
  }
}

function train(out: string, ...args: string[]): CliResult {
  return runCli(["train", "--data", DATA, ...TINY, "--out", out, ...args]);
}

const STEP_FIELDS = [
  "type",
  "step",
  "lr",
  "train_loss",
  "train_output_loss",
  "tokens",
  "loss_tokens",
  "grad_norm",
  "tokens_per_s",
  "examples",
  "step_s",
  "flops",
  "tensors",
  "tensor_bytes",
].sort();
/** Fields that are not one number: the step's phases (mean over ranks) and each rank's compute seconds. */
const STEP_DETAIL_FIELDS = ["phase_s", "rank_compute_s"];
const PHASES = ["allreduce", "data", "forward_backward", "optimizer", "wait"];

/** One IT run, trained on first use; its checkpoint serves generate and score. */
let itRun: { out: string; result: CliResult } | undefined;
function trainedItRun(): { out: string; result: CliResult } {
  if (itRun === undefined) {
    const out = fresh("it");
    const result = train(out, "--loss-mode", "it", "--steps", "3", "--batch-size", "2", "--eval-every", "2");
    assert.equal(result.status, 0, shown(result));
    itRun = { out, result };
  }
  return itRun;
}

function checkpointDir(): string {
  return path.join(trainedItRun().out, "checkpoint");
}

// ---- train -------------------------------------------------------------------------------------------------------

test("train - metrics.jsonl has one step line per step with exactly the documented finite fields", () => {
  const { steps } = readMetrics(trainedItRun().out);
  assert.deepEqual(
    steps.map((s) => s.step),
    [1, 2, 3],
  );
  for (const step of steps) {
    assert.deepEqual(Object.keys(step).sort(), [...STEP_FIELDS, ...STEP_DETAIL_FIELDS].sort());
    for (const key of STEP_FIELDS.filter((k) => k !== "type")) num(step, key);
    assert.ok(num(step, "tokens") >= num(step, "loss_tokens"), JSON.stringify(step));
    assert.ok(num(step, "loss_tokens") > 0, JSON.stringify(step));
    const phases = step["phase_s"] as Record<string, number>;
    assert.deepEqual(Object.keys(phases).sort(), PHASES);
    for (const phase of PHASES)
      assert.ok(Number.isFinite(phases[phase]) && (phases[phase] ?? -1) >= 0, phase);
    assert.equal(phases["wait"], 0, "one rank never waits");
    const compute = step["rank_compute_s"] as number[];
    assert.equal(compute.length, 1);
    assert.ok(Math.abs((compute[0] ?? 0) - (phases["data"] ?? 0) - (phases["forward_backward"] ?? 0)) < 1e-9);
    assert.ok(num(step, "step_s") >= (compute[0] ?? 0), "the step contains its compute");
  }
});

test("train - with --loss-mode it the train loss equals the train output loss (only outputs weigh)", () => {
  const { steps } = readMetrics(trainedItRun().out);
  assert.equal(steps.length, 3);
  for (const step of steps) {
    const difference = Math.abs(num(step, "train_loss") - num(step, "train_output_loss"));
    // The two are summed in different orders (float32 on the backend, float64 in JS): allow rounding only.
    assert.ok(
      difference <= 1e-5 * Math.abs(num(step, "train_output_loss")),
      `|train_loss - train_output_loss| = ${difference}: ${JSON.stringify(step)}`,
    );
  }
});

test("train - with --loss-mode im the train loss differs from the train output loss", () => {
  const out = fresh("im");
  ok([
    "train",
    "--data",
    DATA,
    ...TINY,
    "--out",
    out,
    "--loss-mode",
    "im",
    "--steps",
    "2",
    "--batch-size",
    "2",
  ]);
  const { steps } = readMetrics(out);
  assert.equal(steps.length, 2);
  for (const step of steps) {
    assert.ok(
      Math.abs(num(step, "train_loss") - num(step, "train_output_loss")) > 1e-4,
      `IM weighs instruction tokens too, so the losses should differ: ${JSON.stringify(step)}`,
    );
  }
});

test("train - eval lines carry eval_output_loss, train_eval_output_loss and their difference as the gap", () => {
  const { evals } = readMetrics(trainedItRun().out);
  // --eval-every 2 over 3 steps: at step 2 and always at the end.
  assert.deepEqual(
    evals.map((e) => e.step),
    [2, 3],
  );
  for (const evaluation of evals) {
    const heldOut = num(evaluation, "eval_output_loss");
    const trainSubset = num(evaluation, "train_eval_output_loss");
    assert.ok(
      Math.abs(num(evaluation, "overfitting_gap") - (heldOut - trainSubset)) <= 1e-9,
      JSON.stringify(evaluation),
    );
  }
});

test("train - prints one JSON summary line and writes summary.json and a full checkpoint", () => {
  const { out, result } = trainedItRun();
  const lines = nonEmptyLines(result.stdout);
  assert.equal(lines.length, 1, shown(result));
  const printed = parseObject(lines[0] ?? "");
  assert.equal(printed.steps, 3);

  const summary = readJson(path.join(out, "summary.json"));
  assert.equal(summary.completed_steps, 3);
  const finalEval = field(summary, "final_eval");
  const lastEval = readMetrics(out).evals.at(-1);
  assert.equal(finalEval.eval_output_loss, lastEval?.eval_output_loss);

  for (const file of ["config.json", "model.safetensors", "optimizer.safetensors"]) {
    const stat = fs.statSync(path.join(out, "checkpoint", file));
    assert.ok(stat.size > 0, `checkpoint/${file} is empty`);
  }
  readJson(path.join(out, "checkpoint", "config.json"));
});

test("train - --epochs 1 over 12 examples with --eval-fraction 0 and --batch-size 4 runs exactly 3 steps", () => {
  const out = fresh("epochs");
  const data = writeSyntheticData(fresh("epochs-data"), 12);
  ok([
    "train",
    "--data",
    data,
    ...TINY,
    "--out",
    out,
    "--epochs",
    "1",
    "--eval-fraction",
    "0",
    "--batch-size",
    "4",
  ]);
  assert.deepEqual(
    readMetrics(out).steps.map((s) => s.step),
    [1, 2, 3],
  );
});

// ---- --config ----------------------------------------------------------------------------------------------------

/** promptLossWeight and batch size as recorded in summary.json's options. */
function recordedOptions(out: string): { promptLossWeight: unknown; batchSize: unknown } {
  const options = field(readJson(path.join(out, "summary.json")), "options");
  const weighting = field(field(options, "data"), "weighting");
  return { promptLossWeight: weighting.promptLossWeight, batchSize: options.batchSize };
}

test("train --config - a YAML file's keys are honoured and a command-line flag overrides the file", () => {
  const config = fresh("run.yaml");
  fs.writeFileSync(config, "steps: 3\nbatch-size: 2\nloss-mode: im\n");
  const out = fresh("yaml");
  ok(["train", "--config", config, "--data", DATA, ...TINY, "--out", out, "--steps", "2"]);
  assert.deepEqual(
    readMetrics(out).steps.map((s) => s.step),
    [1, 2],
  );
  assert.deepEqual(recordedOptions(out), { promptLossWeight: 1, batchSize: 2 });
});

test("train --config - a JSON file works too", () => {
  const config = fresh("run.json");
  fs.writeFileSync(config, JSON.stringify({ steps: 1, "batch-size": 2, "loss-mode": "im" }));
  const out = fresh("json");
  ok(["train", "--config", config, "--data", DATA, ...TINY, "--out", out]);
  assert.deepEqual(
    readMetrics(out).steps.map((s) => s.step),
    [1],
  );
  assert.deepEqual(recordedOptions(out), { promptLossWeight: 1, batchSize: 2 });
});

test("train --config - an unknown key fails with exit 2 and one imtrain: line naming it", () => {
  const config = fresh("bad.yaml");
  fs.writeFileSync(config, "steps: 1\nbogus-key: 3\n");
  const out = fresh("bad-config");
  assertUserError(train(out, "--config", config), "bogus-key");
  assert.ok(!fs.existsSync(out), `${out} should not have been created`);
});

// ---- generate ----------------------------------------------------------------------------------------------------

function generate(...args: string[]): CliResult {
  return runCli(["generate", "--model", checkpointDir(), "--backend", "wasm", ...args]);
}

test("generate --prompt - prints one {source, completion} line, at most 5 bytes, the same on every greedy run", () => {
  const args = ["--prompt", "reverse the words count 2: feke guneve", "--max-new-tokens", "5"];
  const first = generate(...args);
  assert.equal(first.status, 0, shown(first));
  const lines = nonEmptyLines(first.stdout);
  assert.equal(lines.length, 1, shown(first));
  const record = parseObject(lines[0] ?? "");
  assert.deepEqual(Object.keys(record).sort(), ["completion", "source"]);
  assert.equal(typeof record.source, "string");
  const completion = record.completion;
  assert.ok(typeof completion === "string", shown(first));
  // Byte tokenizer: one token is one byte; a lone invalid byte decodes to one U+FFFD.
  assert.ok(Buffer.byteLength(completion.replace(/\uFFFD/g, "?")) <= 5, JSON.stringify(completion));

  const second = generate(...args);
  assert.equal(second.status, 0, shown(second));
  assert.equal(second.stdout, first.stdout);
});

test("generate --data --limit 2 - prints one line for each of the first 2 records", () => {
  const result = generate("--data", DATA, "--limit", "2", "--max-new-tokens", "3");
  assert.equal(result.status, 0, shown(result));
  const records = jsonLines(result.stdout);
  assert.equal(records.length, 2, shown(result));
  assert.deepEqual(
    records.map((r) => r.source),
    [`${DATA}:1`, `${DATA}:2`],
  );
  for (const record of records) assert.equal(typeof record.completion, "string");
});

test("generate - with neither --prompt nor --data exits 2", () => {
  assertUserError(generate(), "--prompt");
});

// ---- score -------------------------------------------------------------------------------------------------------

test("score --json - one line per example with finite losses and output tokens", () => {
  const result = ok(["score", "--model", checkpointDir(), "--data", DATA, "--backend", "wasm", "--json"]);
  const records = jsonLines(result.stdout);
  assert.equal(records.length, 20, shown(result));
  for (const record of records) {
    assert.ok(num(record, "output_loss") >= 0, JSON.stringify(record));
    assert.ok(num(record, "all_loss") >= 0, JSON.stringify(record));
    assert.ok(num(record, "output_tokens") > 0, JSON.stringify(record));
  }
});

// ---- analyze -----------------------------------------------------------------------------------------------------

function analyze(...args: string[]): Record<string, unknown> {
  const result = ok(["analyze", ...args, "--json"]);
  const lines = nonEmptyLines(result.stdout);
  assert.equal(lines.length, 1, shown(result));
  return parseObject(lines[0] ?? "");
}

test("analyze --json - counts the records and gives the mean prompt / mean output length ratio", () => {
  const analysis = analyze("--data", DATA);
  assert.equal(analysis.examples, 20);
  assert.equal(analysis.truncated, 0);
  assert.equal(analysis.dropped, 0);
  const ratio = num(field(analysis, "prompt_tokens"), "mean") / num(field(analysis, "output_tokens"), "mean");
  assert.ok(Math.abs(num(analysis, "instruction_output_ratio") - ratio) <= 1e-9, JSON.stringify(analysis));
  assert.ok(ratio > 1, "synthetic instructions are longer than their outputs");
});

function writeRecords(name: string, records: readonly object[]): string {
  const file = fresh(name);
  fs.writeFileSync(file, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return file;
}

const SHORT = { instruction: "Say hi.", input: "", output: "Hi" };

test("analyze --json - a record whose output runs past --context-length counts as truncated, not dropped", () => {
  // tulu with the byte tokenizer: 9 + 19 + 15 marker/instruction tokens, then 40 output bytes and </s> > 64.
  const file = writeRecords("truncated.jsonl", [
    SHORT,
    { instruction: "Repeat the letters.", input: "", output: "a".repeat(40) },
    SHORT,
  ]);
  const analysis = analyze("--data", file, "--context-length", "64");
  assert.deepEqual(
    [analysis.conversations, analysis.examples, analysis.truncated, analysis.dropped],
    [3, 3, 1, 0],
  );
});

test("analyze --json - --truncation end: a record whose prompt alone fills --context-length is dropped", () => {
  const file = writeRecords("dropped.jsonl", [
    SHORT,
    { instruction: "x".repeat(100), input: "", output: "Ok" },
  ]);
  const analysis = analyze("--data", file, "--context-length", "64", "--truncation", "end");
  assert.deepEqual(
    [analysis.conversations, analysis.examples, analysis.truncated, analysis.dropped],
    [2, 1, 0, 1],
  );
});

test("analyze --json - by default the same record keeps its output whole and loses the start of its prompt", () => {
  const file = writeRecords("prompt-cut.jsonl", [
    SHORT,
    { instruction: "x".repeat(100), input: "", output: "Ok" },
  ]);
  const analysis = analyze("--data", file, "--context-length", "64");
  assert.deepEqual(
    [analysis.examples, analysis.truncated, analysis.dropped, analysis.truncation],
    [2, 1, 0, "prompt"],
  );
  // 9 + 100 + 15 + 2 + 1 = 127 tokens, 63 of them instruction bytes cut; no output byte.
  assert.deepEqual([analysis.truncated_prompt_tokens, analysis.truncated_output_tokens], [63, 0]);
});

test("analyze and masks --model - examples are cut at the model's positions, as train cuts them", () => {
  const long = { instruction: "y".repeat(100), input: "", output: "z".repeat(20) };
  const file = writeRecords("model-context.jsonl", [SHORT, long]);
  const config = (positions: number) => {
    const path = fresh(`gpt2-${positions}.json`);
    fs.writeFileSync(
      path,
      JSON.stringify({ vocab_size: 257, n_positions: positions, n_embd: 32, n_layer: 1, n_head: 2 }),
    );
    return path;
  };
  const wide = analyze("--data", file, "--model", config(256));
  const narrow = analyze("--data", file, "--model", config(64));
  assert.deepEqual([wide.context_length, wide.truncated], [256, 0]);
  assert.deepEqual([narrow.context_length, narrow.truncated], [64, 1]);
  assert.equal(
    analyze("--data", file, "--model", "tiny").context_length,
    256,
    "the tiny preset's 256 positions",
  );
  const masks = nonEmptyLines(ok(["masks", "--data", file, "--model", config(64), "--json"]).stdout).map(
    parseObject,
  );
  assert.deepEqual(
    masks.map((m) => (m.ids as number[]).length),
    [34, 64],
  );
  const tooLong = runCli(["analyze", "--data", file, "--model", config(64), "--context-length", "65"]);
  assert.equal(tooLong.status, 2);
  assert.equal(tooLong.stderr.trim(), "imtrain: --context-length: 65 exceeds the model's 64 positions");
});

// ---- synth -------------------------------------------------------------------------------------------------------

test("synth - writes the requested number of records, byte-identical for the same seed", () => {
  const first = fresh("synth-a.jsonl");
  const second = fresh("synth-b.jsonl");
  const other = fresh("synth-c.jsonl");
  ok(["synth", "--out", first, "--examples", "20", "--seed", "3"]);
  ok(["synth", "--out", second, "--examples", "20", "--seed", "3"]);
  ok(["synth", "--out", other, "--examples", "20", "--seed", "4"]);
  const records = jsonLines(fs.readFileSync(first, "utf8"));
  assert.equal(records.length, 20);
  for (const record of records) {
    assert.equal(typeof record.instruction, "string");
    assert.equal(typeof record.output, "string");
  }
  assert.ok(fs.readFileSync(first).equals(fs.readFileSync(second)), "same seed, different files");
  assert.ok(!fs.readFileSync(first).equals(fs.readFileSync(other)), "different seeds, same file");
});

// ---- backends ----------------------------------------------------------------------------------------------------

const nativeInstalled = installed("@tensorflow/tfjs-node-gpu") || installed("@tensorflow/tfjs-node");

test(
  "train --backend tensorflow-gpu - without the package exits 2 with one line naming it",
  { skip: installed("@tensorflow/tfjs-node-gpu") && "@tensorflow/tfjs-node-gpu is installed here" },
  () => {
    const out = fresh("gpu");
    const args = ["--data", DATA, "--model", "tiny", "--steps", "1", "--out", out];
    const result = runCli(["train", ...args, "--backend", "tensorflow-gpu"]);
    assertUserError(result, "@tensorflow/tfjs-node-gpu");
    assert.ok(!fs.existsSync(out), `${out} should not have been created`);
  },
);

test(
  "train --backend auto - without native TensorFlow picks wasm and says on stderr what it skipped",
  { skip: nativeInstalled && "a native TensorFlow package is installed here" },
  () => {
    const out = fresh("auto");
    const result = ok([
      "train",
      "--data",
      DATA,
      "--model",
      "tiny",
      "--backend",
      "auto",
      "--steps",
      "1",
      "--batch-size",
      "2",
      "--out",
      out,
    ]);
    const line = nonEmptyLines(result.stderr).find((l) => /\bwasm\b/.test(l) && l.includes("skipped"));
    assert.ok(line !== undefined, `expected a line naming wasm and what was skipped; ${shown(result)}`);
    assert.ok(line.includes("@tensorflow/tfjs-node "), line);
    // On the default device, cpu, auto never tries a GPU backend.
    assert.ok(!line.includes("tfjs-node-gpu"), line);
    assert.equal(readJson(path.join(out, "summary.json")).backend, "wasm");
    assert.equal(readJson(path.join(out, "summary.json")).device, "cpu");
  },
);

// ---- demo --------------------------------------------------------------------------------------------------------

test("demo - prints an IT and an IM row of finite losses and writes both runs' summaries", () => {
  const out = fresh("demo");
  const result = ok(["demo", "--steps", "2", "--examples", "20", "--out", out]);
  for (const mode of ["IT", "IM"]) {
    const row = nonEmptyLines(result.stdout).find((line) => line.trim().split(/\s+/)[0] === mode);
    assert.ok(row !== undefined, `expected a row ${mode}; ${shown(result)}`);
    // mode, train output loss, held-out output loss, gap, then the run's time ("4 s").
    const figures = row.trim().split(/\s+/).slice(1, 4).map(Number);
    assert.equal(figures.length, 3, row);
    for (const figure of figures) assert.ok(Number.isFinite(figure), row);
  }
  for (const mode of ["it", "im"]) {
    const summary = readJson(path.join(out, mode, "summary.json"));
    assert.equal(summary.completed_steps, 2);
  }
});

// ---- help --------------------------------------------------------------------------------------------------------

test("masks - into a pipe: one labelled line per span with its weight, and no escape codes", () => {
  const result = ok(["masks", "--data", DATA, "--loss-mode", "im", "--limit", "1"]);
  assert.doesNotMatch(result.stdout, /\x1b/);
  assert.match(result.stdout, /^ {2}output {3}w=1 {4}".+"$/m);
  assert.match(result.stdout, /^ {2}prompt {3}w=1 {4}".+"$/m);
  assert.match(result.stdout, /^ {2}template w=0 {4}"<\|user\|>\\n"$/m);
});

test("train --help - lists the metrics flags, each with a description", () => {
  const result = ok(["train", "--help"]);
  for (const flag of ["--metrics-port", "--metrics-host", "--peak-tflops"])
    assert.match(result.stdout, new RegExp(`^ *${flag} +[A-Z][a-z]+ `, "m"), `${flag} in:\n${result.stdout}`);
});

test("train --help - lists the loss flags, each with a description", () => {
  const result = ok(["train", "--help"]);
  const lines = result.stdout.split("\n");
  for (const flag of ["--prompt-loss-weight", "--loss-reduction", "--neftune-alpha", "--kl-weight"]) {
    const line = lines.find((l) => l.trimStart().startsWith(`${flag} `));
    assert.ok(line !== undefined, `${flag} missing from train --help:\n${result.stdout}`);
    const description = line
      .trimStart()
      .slice(flag.length)
      .replace(/\[[^\]]*\]/g, "")
      .trim();
    assert.ok(/[A-Za-zλβα]{3}/.test(description), `${flag} has no description: "${line}"`);
  }
});
