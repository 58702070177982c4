import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultTrainDevice, formatDevice, parseDevice } from "../../shared/backend/device.js";
import { checkWebGpuLimits, largestTensors, longestInput } from "../../shared/backend/limits.js";
import { backendDeviceMismatch } from "../../shared/backend/select.js";
import type { AdapterReport } from "../../shared/backend/adapter.js";
import { presetConfig } from "../../shared/model/config.js";

test("device - cpu, gpu:K and gpu:software parse and print back; anything else names the flag", () => {
  for (const text of ["cpu", "gpu:0", "gpu:7", "gpu:software"])
    assert.equal(formatDevice(parseDevice(text)), text);
  assert.deepEqual(parseDevice("gpu:3"), { kind: "gpu", index: 3 });
  for (const bad of ["gpu", "gpu:-1", "gpu:1.5", "GPU:0", "cuda:0", ""]) {
    assert.throws(() => parseDevice(bad), /^OptionError: --device: /, bad);
  }
  assert.throws(() => parseDevice("tpu", "devices"), /--devices/);
});

test("device - train's default is gpu:0 for a GPU backend named explicitly, else the CPU (auto included)", () => {
  assert.equal(formatDevice(defaultTrainDevice("webgpu")), "gpu:0");
  assert.equal(formatDevice(defaultTrainDevice("tensorflow-gpu")), "gpu:0");
  for (const backend of ["auto", "wasm", "cpu", "tensorflow"])
    assert.equal(formatDevice(defaultTrainDevice(backend)), "cpu");
});

test("device - a GPU device never takes a CPU backend, a CPU device never a GPU one", () => {
  const gpu = parseDevice("gpu:0");
  const cpu = parseDevice("cpu");
  const software = parseDevice("gpu:software");
  for (const name of ["tensorflow", "wasm", "cpu"] as const) {
    assert.match(backendDeviceMismatch(name, gpu) ?? "", /CPU backend/);
    assert.match(backendDeviceMismatch(name, software) ?? "", /--backend webgpu/);
    assert.equal(backendDeviceMismatch(name, cpu), undefined);
  }
  for (const name of ["tensorflow-gpu", "webgpu"] as const) {
    assert.match(backendDeviceMismatch(name, cpu) ?? "", /needs a GPU device/);
    assert.equal(backendDeviceMismatch(name, gpu), undefined);
  }
  assert.equal(backendDeviceMismatch("webgpu", software), undefined);
  assert.match(backendDeviceMismatch("tensorflow-gpu", software) ?? "", /--backend webgpu/);
  for (const device of [gpu, cpu, software]) assert.equal(backendDeviceMismatch("auto", device), undefined);
});

/** Lavapipe's limits, as Dawn reports them. */
const LAVAPIPE: AdapterReport = {
  name: "llvmpipe (LLVM 15.0.6, 256 bits)",
  description: "llvmpipe: Mesa 25.0.7",
  vendor: "mesa",
  api: "vulkan",
  software: true,
  maxStorageBufferBindingSize: 128 * 2 ** 20,
  maxBufferSize: 2 ** 32 - 1,
  computeLimits: {},
};

test("limits - GPT-2's embedding (147 MiB) does not fit lavapipe's 128 MiB binding: the model is named, no flag", () => {
  const gpt2 = presetConfig("gpt2", 50_257);
  assert.throws(
    () => checkWebGpuLimits(LAVAPIPE, gpt2, 1, 16),
    (error: Error) => {
      assert.match(error.message, /token embedding \[V=50257, d=768\] takes 147\.2 MiB.*128\.0 MiB/);
      assert.match(error.message, /this model does not fit this adapter/);
      assert.doesNotMatch(error.message, /--micro-batch-size/);
      return true;
    },
  );
});

test("limits - a micro-batch's logits or attention scores over the limit name --micro-batch-size and --context-length", () => {
  const small = presetConfig("small", 50_257); // embedding 24.5 MiB: fits
  checkWebGpuLimits(LAVAPIPE, small, 1, 512); // logits 98 MiB: fits
  assert.throws(
    () => checkWebGpuLimits(LAVAPIPE, small, 2, 512),
    /logits \[B·T=2·512, V=50257\].*--micro-batch-size \(2\) or --context-length \(512\)/,
  );
  const manyHeads = { ...presetConfig("tiny", 257), heads: 64 }; // scores 16·64·256·256·4 B = 256 MiB
  assert.throws(
    () => checkWebGpuLimits(LAVAPIPE, manyHeads, 16, 256),
    /attention scores \[B·heads=16·64, T=256, T\]/,
  );
  // The smaller of the two limits counts.
  assert.throws(
    () => checkWebGpuLimits({ ...LAVAPIPE, maxBufferSize: 2 ** 20 }, small, 1, 64),
    /max buffer size of 1\.0 MiB/,
  );
  const logits = largestTensors(small, 3, 100).find((tensor) => tensor.what.includes("logits"));
  assert.equal(logits?.bytes, 3 * 100 * 50_257 * 4);
});

test("limits - a model whose gradients (one tensor for AdamW) exceed the binding, though its embedding fits, is named", () => {
  // 3 layers at d = 1024: ~37.8 M parameters, 144 MiB of gradients; the embedding [257, 1024] is 1 MiB.
  const wide = { ...presetConfig("tiny", 257), embedDim: 1024, layers: 3, heads: 16 };
  assert.throws(
    () => checkWebGpuLimits(LAVAPIPE, wide, 1, 16),
    (error: Error) => {
      assert.match(
        error.message,
        /a step's gradients, uploaded as one tensor \[\d+ parameters\] takes 14\d\.\d MiB/,
      );
      assert.match(error.message, /this model does not fit this adapter/);
      return true;
    },
  );
  checkWebGpuLimits(LAVAPIPE, { ...wide, layers: 2 }, 1, 16); // ~25 M parameters, 96 MiB: fits
});

test("limits - a micro-batch is as long as its longest example's inputs", () => {
  const ids = (n: number) => ({ ids: new Int32Array(n) });
  assert.equal(longestInput([[ids(5), ids(9)], [], [ids(7)]]), 8);
  assert.equal(longestInput([]), 1);
});
