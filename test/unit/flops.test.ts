import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { selectBackend } from "../../shared/backend/select.js";
import { presetConfig } from "../../shared/model/config.js";
import { Gpt, initialValues } from "../../shared/model/gpt.js";
import { matmulParameterCount, parameterCount, trainingFlops } from "../../shared/metrics/flops.js";
import { measureMatMulFlops, resolvePeakFlops, tableTflops } from "../../shared/metrics/peak-flops.js";

test("flops - the parameter count is the model's own, and GPT-2 small is 124 M with its vocabulary", () => {
  const config = presetConfig("tiny", 257);
  const model = new Gpt(config, initialValues(config, 1));
  const own = [...model.params.values()].reduce((sum, p) => sum + p.size, 0);
  model.dispose();
  assert.equal(parameterCount(config), own);
  const gpt2 = parameterCount(presetConfig("gpt2", 50257));
  assert.ok(Math.abs(gpt2 - 124.4e6) < 0.1e6, `${gpt2}`);
});

test("flops - the matmul parameters leave out the position table (a lookup) but keep the tied token embedding", () => {
  const config = presetConfig("gpt2", 50257);
  assert.equal(matmulParameterCount(config), parameterCount(config) - 1024 * 768);
  assert.ok(Math.abs(matmulParameterCount(config) - 123.65e6) < 0.01e6, "nanoGPT's 123.65 M for GPT-2 small");
});

test("flops - 6·P per token plus 12·L·d·T for attention", () => {
  const config = presetConfig("tiny", 257); // L=2, d=64
  assert.equal(trainingFlops(config, 1000, 10, 128), 6 * 1000 * 10 + 12 * 2 * 64 * 128 * 10);
});

test("peak flops - the flag wins; known GPUs come from the table; unknown names are not guessed", async () => {
  assert.deepEqual(await resolvePeakFlops(312, "gpu:0"), {
    flopsPerSecond: 312e12,
    source: "flag",
    of: "--peak-tflops",
  });
  assert.equal(tableTflops("NVIDIA H100 80GB HBM3"), 494.7);
  assert.equal(tableTflops("NVIDIA H100 PCIe"), 378);
  assert.equal(tableTflops("NVIDIA A100-SXM4-80GB"), 156);
  assert.equal(tableTflops("Tesla T4"), 8.1);
  assert.equal(tableTflops("NVIDIA L40S"), 183.2);
  assert.equal(tableTflops("NVIDIA L4"), 60);
  assert.equal(tableTflops("Some Future GPU"), undefined);
});

test("peak flops - on a CPU rank the backend's own matmul is measured: positive and finite", async () => {
  await selectBackend("wasm");
  const tensorsBefore = tf.memory().numTensors;
  const measured = await measureMatMulFlops(256, 2);
  assert.ok(Number.isFinite(measured) && measured > 1e8, `${measured} FLOP/s`);
  const peak = await resolvePeakFlops(undefined, "cpu");
  assert.equal(peak.source, "measured");
  assert.match(peak.of, /^wasm 2-D matmul$/);
  assert.equal(tf.memory().numTensors, tensorsBefore, "the measurement leaves no tensors behind");
});
