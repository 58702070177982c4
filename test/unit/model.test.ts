import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";

import { selectBackend } from "../../shared/backend/select.js";
import type { GptConfig } from "../../shared/model/config.js";
import { presetConfig } from "../../shared/model/config.js";
import { Gpt, initialValues, parameterShapes } from "../../shared/model/gpt.js";
import { geluNew } from "../../shared/model/ops.js";
import { mulberry32 } from "../../shared/random.js";
import { AdamW } from "../../shared/train/adamw.js";
import { StepBufferLayout } from "../../shared/train/step-buffer.js";
import { gpt2ParameterShapes, randomGpt2Weights, referenceLogits } from "../support/reference-gpt2.js";

const CONFIG: GptConfig = {
  vocabSize: 11,
  maxPositions: 16,
  embedDim: 8,
  layers: 2,
  heads: 2,
  layerNormEps: 1e-5,
};

// [B, T] = [2, 5]; token 3 repeats within and across rows so the embedding gradient has to accumulate.
const IDS: readonly (readonly number[])[] = [
  [3, 7, 0, 3, 10],
  [5, 3, 9, 1, 7],
];
const B = IDS.length;
const T = IDS[0]?.length ?? 0;

/** GPT2LMHeadModel names: GPT2Model's with the "transformer." prefix. */
function withPrefix(weights: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  return new Map([...weights].map(([name, value]) => [`transformer.${name}`, value]));
}

const HF_WEIGHTS = randomGpt2Weights(CONFIG, 1234);
const WEIGHTS = withPrefix(HF_WEIGHTS);

function idsTensor(ids: readonly (readonly number[])[]): tf.Tensor2D {
  return tf.tensor2d(ids.flat(), [ids.length, ids[0]?.length ?? 0], "int32");
}

/** Gpt.forward on the current backend, as rows [B·T][V]. */
function modelLogits(ids: readonly (readonly number[])[]): number[][] {
  const model = new Gpt(CONFIG, WEIGHTS, false);
  try {
    return tf.tidy(() => model.forward(idsTensor(ids))).arraySync();
  } finally {
    model.dispose();
  }
}

function maxAbs(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i] ?? NaN));
  return max;
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] ?? NaN) - (b[i] ?? NaN)));
  return max;
}

test("parameter names and shapes are Hugging Face GPT2LMHeadModel's", () => {
  const hf = [...gpt2ParameterShapes(CONFIG)].map(([name, shape]) => [`transformer.${name}`, shape] as const);
  assert.deepEqual(parameterShapes(CONFIG), new Map(hf));
});

test("forward equals an independent plain-JS GPT-2 on wasm and on cpu", async () => {
  const expected = IDS.flatMap((row) => referenceLogits(CONFIG, HF_WEIGHTS, row)); // [B·T][V]
  // A 1e-4 tolerance means something only if the logits are well away from zero.
  assert.ok(maxAbs(expected.flat()) > 1, `reference logits too small: ${maxAbs(expected.flat())}`);
  for (const backend of ["wasm", "cpu"] as const) {
    await selectBackend(backend);
    const actual = modelLogits(IDS);
    assert.equal(actual.length, B * T);
    actual.forEach((row, i) => {
      const difference = maxAbsDifference(row, expected[i] ?? []);
      assert.ok(difference < 1e-4, `${backend}: logits row ${i} differ by ${difference}`);
    });
  }
});

/** Every parameter's gradient of Σ logits ⊙ R on `backend`. */
async function gradients(
  backend: "wasm" | "cpu",
  upstream: Float32Array,
): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  await selectBackend(backend);
  const model = new Gpt(CONFIG, WEIGHTS, true);
  try {
    const grads = new Map<string, Float32Array>();
    let loss = NaN;
    tf.tidy(() => {
      const ids = idsTensor(IDS);
      const r = tf.tensor2d(upstream, [B * T, CONFIG.vocabSize]);
      const result = tf.variableGrads(
        () => tf.sum(tf.mul(model.forward(ids), r)) as tf.Scalar,
        [...model.params.values()],
      );
      loss = result.value.dataSync()[0] ?? NaN;
      for (const [name, variable] of model.params) {
        const grad = result.grads[variable.name];
        assert.ok(grad !== undefined, `${backend}: no gradient for ${name}`);
        grads.set(name, Float32Array.from(grad.dataSync()));
      }
    });
    return { loss, grads };
  } finally {
    model.dispose();
  }
}

test("gradients on wasm equal gradients on cpu", async () => {
  const random = mulberry32(99);
  const upstream = Float32Array.from({ length: B * T * CONFIG.vocabSize }, () => 2 * random() - 1);
  const cpu = await gradients("cpu", upstream);
  const wasm = await gradients("wasm", upstream);
  assert.ok(
    Math.abs(wasm.loss - cpu.loss) <= 1e-4 * Math.max(1, Math.abs(cpu.loss)),
    `loss ${wasm.loss} vs ${cpu.loss}`,
  );
  assert.equal(wasm.grads.size, parameterShapes(CONFIG).size);
  for (const [name, expected] of cpu.grads) {
    const actual = wasm.grads.get(name);
    assert.ok(actual !== undefined, `wasm: no gradient for ${name}`);
    const scale = maxAbs(expected);
    // Each parameter feeds the loss, so an all-zero gradient would mean a broken backward pass.
    assert.ok(scale > 1e-6, `cpu gradient of ${name} is zero`);
    // float32: relative to the tensor's largest entry, so entries near zero do not demand exact bits.
    const difference = maxAbsDifference(actual, expected);
    assert.ok(
      difference <= 1e-4 * scale,
      `${name}: wasm and cpu gradients differ by ${difference} (scale ${scale})`,
    );
  }
  // Positions beyond T are never used, so their rows of wpe get exactly no gradient.
  const wpe = wasm.grads.get("transformer.wpe.weight") ?? new Float32Array();
  assert.equal(maxAbs(wpe.subarray(T * CONFIG.embedDim)), 0);
});

test("changing a later token leaves earlier positions' logits unchanged", async () => {
  await selectBackend("wasm");
  const changed = IDS.map((row) => [...row]);
  const position = 3;
  const row0 = changed[0] ?? [];
  row0[position] = ((row0[position] ?? 0) + 1) % CONFIG.vocabSize;
  const before = modelLogits(IDS);
  const after = modelLogits(changed);
  for (let t = 0; t < T; t++) {
    const difference = maxAbsDifference(before[t] ?? [], after[t] ?? []);
    if (t < position) assert.ok(difference <= 1e-6, `position ${t} moved by ${difference}`);
    else assert.ok(difference > 1e-3, `position ${t} did not see the changed token (${difference})`);
  }
  // The other sequence in the batch is untouched.
  for (let t = T; t < B * T; t++) {
    const difference = maxAbsDifference(before[t] ?? [], after[t] ?? []);
    assert.ok(difference <= 1e-6, `row 1 position ${t - T} moved by ${difference}`);
  }
});

test("a model and its Adam moments hold one tensor per parameter each, also after an update: no temporaries kept", async () => {
  await selectBackend("wasm");
  const initial = tf.memory().numTensors;
  const model = new Gpt(CONFIG, WEIGHTS, true);
  const params = model.params.size;
  assert.equal(tf.memory().numTensors - initial, params, "the model's variables");
  const before = initial;
  const optimizer = new AdamW(model.params, {
    beta1: 0.9,
    beta2: 0.999,
    adamEpsilon: 1e-8,
    weightDecay: 0.01,
  });
  assert.equal(tf.memory().numTensors - before, 3 * params, "plus m and v");
  const layout = new StepBufferLayout(new Map([...model.params].map(([name, p]) => [name, p.shape])));
  const bytesBefore = tf.memory().numBytes;
  optimizer.apply(layout, new Float32Array(layout.size).fill(0.01), 1e-3);
  assert.equal(tf.memory().numTensors - before, 3 * params, "an update keeps no old values alive");
  assert.equal(tf.memory().numBytes, bytesBefore);
  model.dispose();
  assert.equal(tf.memory().numTensors - initial, 2 * params, "disposed: the moments are the optimizer's");
});

test("a fresh gpt2-preset model initialises (its 38.6 M-element embedding once overflowed tidy's tensor walk)", async () => {
  await selectBackend("wasm");
  const config = presetConfig("gpt2", 50_257);
  const values = initialValues(config, 1);
  assert.equal(values.get("transformer.wte.weight")?.length, 50_257 * 768);
  const sum = [...values.values()].reduce((total, v) => total + v.length, 0);
  assert.equal(
    sum,
    [...parameterShapes(config).values()].reduce((t, s) => t + s.reduce((a, b) => a * b, 1), 0),
  );
});

test("gelu_new (computed as x·σ(2u)) and its gradient equal GPT-2's tanh formula on wasm and cpu", async () => {
  // 243 values: on wasm, SIMD over 240 and a scalar tail of three, two of them where σ′ is far from 0.
  const xs = [...Array.from({ length: 241 }, (_, i) => -12 + i * 0.1), 0.3, -0.7];
  const scale = Math.sqrt(2 / Math.PI);
  const u = (x: number) => scale * (x + 0.044715 * x ** 3);
  const value = (x: number) => 0.5 * x * (1 + Math.tanh(u(x)));
  const slope = (x: number) =>
    0.5 * (1 + Math.tanh(u(x))) + 0.5 * x * (1 - Math.tanh(u(x)) ** 2) * scale * (1 + 3 * 0.044715 * x * x);
  for (const backend of ["wasm", "cpu"]) {
    if (backend === "wasm") await selectBackend("wasm");
    else await tf.setBackend("cpu");
    const x = tf.tensor1d(xs);
    const [y, dydx] = [geluNew(x), tf.grad((t: tf.Tensor) => tf.sum(geluNew(t)))(x)];
    const [values, slopes] = [await y.data(), await dydx.data()];
    tf.dispose([x, y, dydx]);
    xs.forEach((x, i) => {
      const close = (got: number | undefined, want: number) =>
        Math.abs((got ?? NaN) - want) <= 1e-6 * (1 + Math.abs(want));
      assert.ok(close(values[i], value(x)), `${backend}: gelu_new(${x}) = ${values[i]}, want ${value(x)}`);
      assert.ok(close(slopes[i], slope(x)), `${backend}: gelu_new'(${x}) = ${slopes[i]}, want ${slope(x)}`);
    });
  }
});
