// Run as a child process by test/e2e/webgpu-fused-kernels.test.ts (Dawn keeps a process alive): the fused
// kernels on webgpu (a software GPU) against the composite ops on cpu: the same network and AdamW steps as
// the wasm kernels' test, and causal self-attention. Prints one JSON line: for each case the largest |webgpu − cpu| / (1 + |cpu|), and
// how often each fused kernel ran on webgpu.
import * as tf from "@tensorflow/tfjs-core";
import { ATTENTION_KERNELS } from "../../shared/backend/fused-kernels.js";
import { selectBackend } from "../../shared/backend/select.js";
import { causalSelfAttention, geluNew, layerNorm, linear } from "../../shared/model/ops.js";
import { mulberry32 } from "../../shared/random.js";
import { AdamW } from "../../shared/train/adamw.js";
import { StepBufferLayout } from "../../shared/train/step-buffer.js";

type Values = number[][];

/** LayerNorm → gelu_new → linear over [rows, width] → [rows, 7]: its output and every gradient. */
function network(rows: number, width: number): tf.Tensor[] {
  const x = tf.randomNormal([rows, width], 0, 2, "float32", 4);
  const gain = tf.randomNormal([width], 1, 0.1, "float32", 5);
  const bias = tf.randomNormal([width], 0, 0.1, "float32", 6);
  const weight = tf.randomNormal([width, 7], 0, 0.3, "float32", 7);
  const b2 = tf.randomNormal([7], 0, 0.1, "float32", 8);
  const upstream = tf.randomNormal([rows, 7], 0, 1, "float32", 9);
  const forward = (xs: tf.Tensor, g: tf.Tensor, b: tf.Tensor, w: tf.Tensor, c: tf.Tensor) => {
    const normed = layerNorm(xs, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5);
    return linear(geluNew(normed as tf.Tensor2D), w as tf.Tensor2D, c as tf.Tensor1D);
  };
  const grads = tf.grads((...args: tf.Tensor[]) =>
    tf.sum(tf.mul(forward(...(args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor])), upstream)),
  )([x, gain, bias, weight, b2]);
  return [forward(x, gain, bias, weight, b2), geluNew(tf.linspace(-12, 12, 97)), ...grads];
}

/** Three AdamW steps on a decayed matrix and an undecayed vector: the parameters after. */
async function adamWSteps(): Promise<Values> {
  const shapes = new Map<string, number[]>([
    ["w", [7, 5]],
    ["b", [6]],
  ]);
  const random = mulberry32(11);
  const gradients = [1, 2, 3].map(() => Float32Array.from({ length: 41 }, () => random() * 2 - 1));
  const params = new Map(
    [...shapes].map(([name, shape]) => [name, tf.variable(tf.randomNormal(shape, 0, 0.5, "float32", 3))]),
  );
  const optimizer = new AdamW(params, { beta1: 0.9, beta2: 0.95, adamEpsilon: 1e-8, weightDecay: 0.1 });
  const layout = new StepBufferLayout(shapes);
  for (const g of gradients) optimizer.apply(layout, g, 3e-3);
  const values = await Promise.all([...params.values()].map(async (p) => Array.from(await p.data())));
  params.forEach((p) => p.dispose());
  return values;
}

/** Attention over qkv [B·T, 3d] → [B·T, d], its value and qkv's gradient. */
function attention(batch: number, length: number, heads: number, headSize: number): tf.Tensor[] {
  const width = 3 * heads * headSize;
  const qkv = tf.randomNormal([batch * length, width], 0, 1.5, "float32", 12);
  const upstream = tf.randomNormal([batch * length, heads * headSize], 0, 1, "float32", 13);
  const value = causalSelfAttention(qkv as tf.Tensor2D, batch, heads);
  const grad = tf.grad((x: tf.Tensor) =>
    tf.sum(tf.mul(causalSelfAttention(x as tf.Tensor2D, batch, heads), upstream)),
  )(qkv);
  return [value, grad];
}

async function valuesOf(tensors: tf.Tensor[]): Promise<Values> {
  const values = await Promise.all(tensors.map(async (t) => Array.from(await t.data())));
  tf.dispose(tensors);
  return values;
}

const CASES: Record<string, () => Promise<Values>> = {
  // Widths below, at and above the 64 lanes of a reduction workgroup; 130 rows: lanes stride over rows.
  ...Object.fromEntries(
    [
      [24, 18],
      [1, 64],
      [130, 100],
      [65_600, 2], // LayerNorm's 65,600 workgroups: more than a dispatch dimension's 65,535, so folded
    ].map(([rows = 1, width = 1]) => [`network ${rows}x${width}`, () => valuesOf(network(rows, width))]),
  ),
  // One position; head sizes off 4; 70 positions: more keys than a workgroup's 64 lanes.
  ...Object.fromEntries(
    [
      [2, 1, 2, 3],
      [2, 7, 2, 5],
      [1, 70, 3, 8],
      [1, 3, 1, 70], // a head wider than 64 lanes
      [1, 65, 1024, 1], // 66,560 query rows: a folded dispatch
    ].map(([batch = 1, length = 1, heads = 1, headSize = 1]) => [
      `attention B${batch} T${length} H${heads} hs${headSize}`,
      () => valuesOf(attention(batch, length, heads, headSize)),
    ]),
  ),
  adamw: adamWSteps,
};

function largestError(actual: Values, expected: Values): number {
  let worst = 0;
  actual.forEach((values, t) =>
    values.forEach((value, i) => {
      const want = expected[t]?.[i] ?? NaN;
      worst = Math.max(worst, Math.abs(value - want) / (1 + Math.abs(want)));
    }),
  );
  return Number.isNaN(worst) ? Infinity : worst;
}

/** The largest |weight| above the diagonal of the forward kernel's weights (its contract: zeros). */
async function weightsAboveDiagonal(): Promise<number> {
  const [batch, length, heads, headSize] = [2, 9, 2, 4];
  const qkv = tf.randomNormal([batch * length, 3 * heads * headSize], 0, 1, "float32", 14);
  const attrs = { batch, heads, scale: 0.5 };
  // A released buffer of the weights' size, full of sevens, for the kernel's output to reuse (a new GPU
  // buffer starts as zeros, which would hide a kernel that never writes above the diagonal).
  const sevens = tf.fill([batch * heads, length, length], 7);
  await sevens.data();
  sevens.dispose();
  const [context, weights] = tf
    .engine()
    .runKernel(ATTENTION_KERNELS.forward, { qkv }, { ...attrs }) as tf.Tensor[];
  const values = await (weights as tf.Tensor).data();
  let largest = 0;
  for (let row = 0; row < batch * heads * length; row++)
    for (let key = (row % length) + 1; key < length; key++)
      largest = Math.max(largest, Math.abs(values[row * length + key] ?? NaN));
  tf.dispose([qkv, context as tf.Tensor, weights as tf.Tensor]);
  return largest;
}

await selectBackend("webgpu", { kind: "gpu-software" });
const errors: Record<string, number> = {};
const fusedRuns: Record<string, number> = {};
for (const [name, run] of Object.entries(CASES)) {
  await tf.setBackend("webgpu");
  let gpu: Values = [];
  const profile = await tf.profile(async () => {
    gpu = await run();
  });
  for (const kernel of profile.kernels)
    if (kernel.name.startsWith("Imtrain")) fusedRuns[kernel.name] = (fusedRuns[kernel.name] ?? 0) + 1;
  await tf.setBackend("cpu");
  errors[name] = largestError(gpu, await run());
}
await tf.setBackend("webgpu");
console.log(JSON.stringify({ errors, fusedRuns, aboveDiagonal: await weightsAboveDiagonal() }));
process.exit(0);
