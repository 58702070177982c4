// `npm run gpu-check`, the script a person runs on a GPU machine, run here on the software GPU
// (--software; Mesa's lavapipe, which CI installs) with a small throughput shape: it finds the GPU
// backend through `imtrain devices`, trains 20 steps on it against wasm, and prints one JSON line per
// figure. Without --software, a machine with no hardware GPU fails it in one line.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { runNodeScript } from "../support/cli.js";
import { fileURLToPath } from "node:url";
import { gpuCensus, installed, requireSoftwareGpu } from "../support/gpu.js";

const GPU_CHECK = join(dirname(fileURLToPath(import.meta.url)), "../../bench/gpu-check.js");

function gpuCheck(args: readonly string[]) {
  return runNodeScript(GPU_CHECK, args);
}

type Figure = Record<string, unknown>;

test(
  "gpu-check - on the software GPU: 20 steps agree with wasm, then matmul, step and memory figures",
  { timeout: 300_000 },
  async (t) => {
    if (!requireSoftwareGpu(t)) return;
    const result = await gpuCheck(["--software", "--model", "tiny", "--batch", "2", "--seq", "64"]);
    assert.equal(result.status, 0, result.stderr.slice(-3000));
    const figures = result.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Figure);
    const named = (name: string | RegExp) =>
      figures.find((f) => (typeof name === "string" ? f["name"] === name : name.test(String(f["name"]))));
    assert.ok(named("devices"), result.stdout);
    const agreement = named("agreement/webgpu/gpu:software");
    assert.ok(agreement, result.stdout);
    assert.equal(agreement["ok"], true);
    assert.equal(agreement["steps"], 20);
    assert.ok(
      (agreement["value"] as number) <= 1e-3 && (agreement["ratio"] as number) <= 1,
      JSON.stringify(agreement),
    );
    // The runs trained: agreeing losses are not two flat lines.
    assert.ok(
      (agreement["last_loss"] as number) < (agreement["first_loss"] as number) - 0.5,
      JSON.stringify(agreement),
    );
    const matmul = named(/^matmul\/\d+\/webgpu$/);
    assert.equal(matmul?.["unit"], "TFLOP/s");
    assert.ok((matmul?.["value"] as number) > 0, JSON.stringify(matmul));
    const step = named("train_step/tiny/webgpu");
    assert.equal(step?.["vocab"], 50257);
    assert.ok((step?.["tokens_per_s"] as number) > 0, JSON.stringify(step));
    const memory = named("memory/tiny");
    assert.equal(memory?.["backend"], "webgpu");
    assert.ok((memory?.["ratio"] as number) >= 1, JSON.stringify(memory));
  },
);

test(
  "gpu-check - with no hardware GPU backend it fails in one line naming each backend tried",
  { timeout: 120_000 },
  async (t) => {
    if (gpuCensus().adapters.some((a) => !a.software) || installed("@tensorflow/tfjs-node-gpu")) {
      t.skip("this machine may have a GPU backend");
      return;
    }
    const result = await gpuCheck([]);
    assert.equal(result.status, 1, result.stderr.slice(-2000));
    const last = result.stderr.trim().split("\n").pop() ?? "";
    assert.match(
      last,
      /^gpu-check: no GPU backend runs here \(tensorflow-gpu on gpu:0: .*not installed.*webgpu on gpu:0: /,
    );
  },
);
