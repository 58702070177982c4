// The webgpu backend end to end, on a software GPU (Mesa's lavapipe, which CI installs): `imtrain train
// --backend webgpu --device gpu:software` learns what wasm learns, step for step, and a micro-batch too
// large for the adapter stops before training with the flag to lower.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import type { JobSummary } from "../../coordinator/job-records.js";
import { runCli, runNodeScript } from "../support/cli.js";
import type { Figure } from "../../bench/figure.js";
import { requireSoftwareGpu } from "../support/gpu.js";
import { assertSameRun, assertSteadyMemory, stepLosses } from "../support/same-run.js";
import { tempDir, writeMicroModelConfig, writeSyntheticData } from "../support/tiny.js";

const dir = tempDir("webgpu");
const data = writeSyntheticData(dir, 40, 9);
const modelConfig = writeMicroModelConfig(dir);

function flags(out: string, { steps = "20", evalFraction = "0" } = {}): string[] {
  return [
    "--data",
    data,
    "--model",
    modelConfig,
    "--steps",
    steps,
    "--batch-size",
    "6",
    "--micro-batch-size",
    "2",
    "--prompt-loss-weight",
    "0.5",
    "--neftune-alpha",
    "5",
    "--lr",
    "3e-3",
    "--warmup-steps",
    "3",
    "--seed",
    "3",
    "--eval-fraction",
    evalFraction,
    "--out",
    out,
  ];
}

/** Lines of stderr that are not Dawn's own start-up warnings. */
function ourLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line !== "" && !line.startsWith("Warning: "));
}

test(
  "webgpu - 20 steps of train on a software GPU match wasm's per-step losses within 1e-3 relative",
  { timeout: 240_000 },
  async (t) => {
    if (!requireSoftwareGpu(t)) return;
    const wasmOut = join(dir, "wasm");
    const gpuOut = join(dir, "webgpu");
    const [wasm, gpu] = await Promise.all([
      runCli(["train", ...flags(wasmOut), "--backend", "wasm"]),
      runCli(["train", ...flags(gpuOut), "--backend", "webgpu", "--device", "gpu:software"]),
    ]);
    assert.equal(wasm.status, 0, wasm.stderr.slice(-3000));
    assert.equal(gpu.status, 0, gpu.stderr.slice(-3000));
    assert.match(gpu.stderr, /backend webgpu on gpu:software, adapter "[^"]*(llvmpipe|lavapipe)/);
    const summary = JSON.parse(gpu.stdout.trim().split("\n").pop() ?? "{}") as Record<string, string>;
    assert.equal(summary["backend"], "webgpu");
    assert.equal(summary["device"], "gpu:software");
    const expected = stepLosses(wasmOut);
    const actual = stepLosses(gpuOut);
    assert.equal(actual.length, 20);
    actual.forEach((loss, i) => {
      const want = expected[i] ?? NaN;
      assert.ok(
        Math.abs(loss - want) <= 1e-3 * Math.abs(want),
        `step ${i + 1}: webgpu ${loss} vs wasm ${want}`,
      );
    });
    // Training moved the loss: equal curves are not two flat lines.
    assert.ok((actual[19] ?? 0) < (actual[0] ?? 0) - 0.5, `losses ${actual[0]} → ${actual[19]}`);
  },
);

test(
  "webgpu - launch with 2 workers on the software GPU matches train on it within 1e-4",
  { timeout: 300_000 },
  async (t) => {
    if (!requireSoftwareGpu(t)) return;
    const trainOut = join(dir, "webgpu-train-for-launch");
    const launchOut = join(dir, "webgpu-launch");
    const gpu = ["--backend", "webgpu"];
    const [single, launched] = await Promise.all([
      runCli(["train", ...flags(trainOut), ...gpu, "--device", "gpu:software"]),
      runCli([
        "launch",
        "--workers",
        "2",
        "--nats",
        "embedded",
        "--devices",
        "gpu:software",
        ...flags(launchOut),
        ...gpu,
      ]),
    ]);
    assert.equal(single.status, 0, single.stderr.slice(-3000));
    assert.equal(launched.status, 0, launched.stderr.slice(-3000));
    assert.match(launched.stderr, /\[w1\].*backend webgpu on gpu:software/);
    // The summary names what the workers reported, rank by rank, not the job's --backend flag.
    const summary = JSON.parse(readFileSync(join(launchOut, "summary.json"), "utf8")) as JobSummary;
    assert.equal(summary.backend, "webgpu");
    assert.equal(summary.device, "gpu:software");
    assert.match(summary.adapter, /llvmpipe|lavapipe/);
    assert.deepEqual(
      summary.ranks?.map(({ rank, backend, device }) => ({ rank, backend, device })),
      [0, 1].map((rank) => ({ rank, backend: "webgpu", device: "gpu:software" })),
    );
    // Two ranks sum in another order than one: the same run within 1e-4, losses and weights.
    await assertSameRun(trainOut, launchOut, 20);
  },
);

test(
  "webgpu - memory - 300 steps on the software GPU: the live tensors and their bytes at step 300 are those at step 20",
  { timeout: 300_000 },
  async (t) => {
    if (!requireSoftwareGpu(t)) return;
    const out = join(dir, "steady");
    const steady = ["--kl-weight", "0.1", "--eval-every", "50", "--checkpoint-every", "100"];
    const result = await runCli([
      "train",
      ...flags(out, { steps: "300", evalFraction: "0.1" }),
      ...steady,
      "--backend",
      "webgpu",
      "--device",
      "gpu:software",
    ]);
    assert.equal(result.status, 0, result.stderr.slice(-3000));
    assertSteadyMemory(out, 20, 300);
  },
);

test(
  "webgpu - logits above the adapter's storage-binding limit stop before training, naming --micro-batch-size",
  { timeout: 60_000 },
  async (t) => {
    if (!requireSoftwareGpu(t)) return;
    // A vocabulary of 200,000 makes a micro-batch of 8 examples' logits ~570 MiB; lavapipe binds 128 MiB.
    const bigVocab = join(dir, "big-vocab.json");
    writeFileSync(
      bigVocab,
      JSON.stringify({ vocab_size: 200_000, n_positions: 128, n_embd: 32, n_layer: 1, n_head: 2 }),
    );
    const out = join(dir, "too-big");
    const args = ["--data", data, "--model", bigVocab, "--steps", "1", "--batch-size", "8", "--out", out];
    const result = await runCli(["train", ...args, "--backend", "webgpu", "--device", "gpu:software"]);
    assert.equal(result.status, 2, result.stderr.slice(-3000));
    const last = ourLines(result.stderr).pop() ?? "";
    assert.match(
      last,
      /^imtrain: backend webgpu: a micro-batch's logits .* above .* lower --micro-batch-size \(8\)/,
    );
    assert.doesNotMatch(result.stderr, /^\s+at /m, "no stack trace");
    assert.ok(!existsSync(out), `${out} should not have been created`);
  },
);

test(
  "webgpu - bench: host copies per step are the same for a 2-layer and a 4-layer model, and kernels are timed",
  { timeout: 240_000 },
  async (t) => {
    if (!requireSoftwareGpu(t)) return;
    const bench = join(dirname(fileURLToPath(import.meta.url)), "../../bench/main.js");
    const skips = ["--skip-matmul", "--skip-allreduce", "--skip-scaling", "--skip-metrics", "--skip-torch"];
    const result = await runNodeScript(bench, [
      ...["--backend", "webgpu", "--device", "gpu:software", "--models", "tiny,small"],
      ...["--seq", "32", "--batch", "2", "--memory-model", "", ...skips],
    ]);
    assert.equal(result.status, 0, result.stderr.slice(-3000));
    const figures = result.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Figure);
    const named = (name: string) => {
      const found = figures.find((f) => f.name === name);
      assert.ok(found, `${name} in ${result.stdout}`);
      return found;
    };
    const [tiny, small] = [named("host_copies/tiny/webgpu"), named("host_copies/small/webgpu")];
    assert.deepEqual([small["layers"], tiny["layers"]], [4, 2]);
    // One upload of the gradients and the batch's few tensors; three downloads.
    assert.equal(small.value, tiny.value, "copies per step do not grow with the layers");
    assert.equal(small["downloads"], 3);
    const kernels = named("kernels/small/webgpu");
    // The GPU programs behind the kernels: a fused kernel runs one per output.
    assert.ok((kernels["gpu_programs"] as number) > 0, `gpu_programs ${String(kernels["gpu_programs"])}`);
    assert.ok((kernels["kernel_ms"] as number) > 0, "lavapipe has timestamp queries: kernels are timed");
    assert.equal(kernels["costliest_by"], "time");
  },
);
