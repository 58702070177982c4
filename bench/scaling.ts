// Data-parallel scaling, measured as a user runs it: the same job as `imtrain train` (one process) and as
// `imtrain launch --workers 1` and `--workers 2` (a coordinator and worker processes on the in-process NATS
// bus). Each figure is steady-state tokens/s: the tokens of the steps after the first WARMUP_STEPS over
// their step times (metrics.jsonl), since a short run's start-up (wasm compilation, a worker's first step)
// would otherwise weigh on the runs with more processes; summary.json's whole-run tokens/s is beside it.
//   scaling_2v1    2 workers' tokens/s ÷ one worker's, against 2 (perfect scaling)
//   dist_overhead  1 distributed worker's tokens/s against the single-process trainer's
//   independent_2v1  two `train` processes at once, their tokens/s summed ÷ one alone, against 2: what
//                  this machine gives two processes with no communication at all (shared caches, memory
//                  bandwidth, the host's scheduling), the practical ceiling of scaling_2v1
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { readMetricsLog } from "../report/metrics-log.js";
import { figure, type Emit } from "./figure.js";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "../cli/main.js");
/** A deadline for each run: a hung job fails the bench by name instead of stalling it. */
const RUN_TIMEOUT_MS = 20 * 60_000;
/** Steps left out of the steady state: compilation and first allocations. */
const WARMUP_STEPS = 3;

export interface ScalingShape {
  readonly embedDim: number;
  readonly layers: number;
  readonly heads: number;
  readonly seq: number;
  /** Examples per optimizer step, over all workers. */
  readonly batch: number;
  readonly steps: number;
}

function run(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { timeout: RUN_TIMEOUT_MS, maxBuffer: 64 * 2 ** 20 },
      (error, _, stderr) =>
        error
          ? reject(new Error(`imtrain ${args[0]}: ${error.message.split("\n")[0]}\n${stderr.slice(-2000)}`))
          : resolve(),
    );
  });
}

export async function benchScaling(emit: Emit, shape: ScalingShape): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "imtrain-bench-scaling-"));
  const model = join(dir, "model.json");
  writeFileSync(
    model,
    JSON.stringify({
      vocab_size: 257,
      n_positions: shape.seq,
      n_embd: shape.embedDim,
      n_layer: shape.layers,
      n_head: shape.heads,
    }),
  );
  const data = join(dir, "data.jsonl");
  // Records that nearly fill the context (a word is ~6 bytes of the byte-level vocabulary; a few are cut at
  // the prompt): the steps are as large as the shape says, so per-step coordination is not overstated.
  await run([
    "synth",
    "--out",
    data,
    "--examples",
    String(4 * shape.batch),
    "--instruction-words",
    String(Math.max(1, Math.floor(shape.seq * 0.12))),
    "--output-words",
    String(Math.max(1, Math.floor(shape.seq * 0.04))),
  ]);
  const job = [
    ...[
      "--data",
      data,
      "--model",
      model,
      "--context-length",
      String(shape.seq),
      "--steps",
      String(shape.steps),
    ],
    ...[
      "--batch-size",
      String(shape.batch),
      // The plain template: Alpaca's preamble alone is longer than a quick run's context.
      "--template",
      "plain",
      "--eval-fraction",
      "0",
      "--backend",
      "wasm",
      "--checkpoint-every",
      "0",
    ],
  ];
  const wholeRun: Record<string, number> = {};
  const tokensPerSecond = async (name: string, args: readonly string[]) => {
    const out = join(dir, name);
    await run([...args, ...job, "--out", out]);
    wholeRun[name] = (
      JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as { tokens_per_s: number }
    ).tokens_per_s;
    const steady = readMetricsLog(join(out, "metrics.jsonl")).steps.slice(WARMUP_STEPS);
    const sum = (pick: (line: (typeof steady)[number]) => number | null | undefined) =>
      steady.reduce((total, line) => total + (pick(line) ?? NaN), 0);
    return sum((line) => line.tokens) / sum((line) => line.step_s);
  };
  const single = await tokensPerSecond("train", ["train"]);
  const pair = await Promise.all([
    tokensPerSecond("train-pair-a", ["train"]),
    tokensPerSecond("train-pair-b", ["train"]),
  ]);
  const one = await tokensPerSecond("launch-1", ["launch", "--workers", "1", "--nats", "embedded"]);
  const two = await tokensPerSecond("launch-2", ["launch", "--workers", "2", "--nats", "embedded"]);
  const details = {
    ...shape,
    train_tokens_per_s: single,
    workers1_tokens_per_s: one,
    workers2_tokens_per_s: two,
    independent_pair_tokens_per_s: pair,
    steady_after_steps: WARMUP_STEPS,
    whole_run_tokens_per_s: wholeRun,
  };
  emit(figure("scaling_2v1", two / one, "×", details, 2));
  emit(figure("dist_overhead", one, "tokens/s", details, single));
  emit(figure("independent_2v1", (pair[0] + pair[1]) / single, "×", details, 2));
}
