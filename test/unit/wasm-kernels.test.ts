// The kernels imtrain registers on wasm (shared/backend/wasm-kernels.ts) against tfjs's cpu backend, which
// is the reference: slices, unstacks, splits, transposes, gathers and identities of every rank, axis and
// dtype are exact copies; the embedding gradient (UnsortedSegmentSum), attention's per-slice batched
// matmul, LayerNorm and a bias's gradient agree to float rounding.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { selectBackend } from "../../shared/backend/select.js";
import { WASM_TRAINING_KERNELS } from "../../shared/backend/wasm-kernels.js";
import { geluNew, layerNorm, linear, matMul } from "../../shared/model/ops.js";
import { mulberry32 } from "../../shared/random.js";
import { AdamW } from "../../shared/train/adamw.js";
import { StepBufferLayout } from "../../shared/train/step-buffer.js";

/** `compute`'s tensors on cpu and on wasm, as arrays. */
async function onBothBackends(compute: () => tf.Tensor[]): Promise<{ cpu: number[][]; wasm: number[][] }> {
  const run = async (backend: string) => {
    if (backend === "wasm") await selectBackend("wasm");
    else await tf.setBackend(backend);
    const tensors = tf.tidy(compute);
    const values = await Promise.all(tensors.map(async (t) => Array.from(await t.data())));
    tf.dispose(tensors);
    return values;
  };
  return { cpu: await run("cpu"), wasm: await run("wasm") };
}

function input(shape: number[], dtype: "float32" | "int32" = "float32"): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Array.from({ length: size }, (_, i) => (dtype === "int32" ? i : i * 0.5 - 7)),
    shape,
    dtype,
  );
}

test("wasm kernels - Slice of ranks 1 to 5, contiguous or not, float32 and int32: exactly the cpu backend's", async () => {
  const { cpu, wasm } = await onBothBackends(() => [
    tf.slice(input([10]), [3], [4]),
    tf.slice(input([6, 5]), [2, 0], [3, 5]), // whole rows: one run
    tf.slice(input([6, 5]), [1, 2], [4, 2]), // a window: a run per row
    tf.slice(input([4, 3, 5], "int32"), [1, 1, 1], [2, 2, 3]),
    tf.slice(input([3, 4, 2, 5]), [1, 0, 1, 2], [2, 4, 1, 3]),
    tf.slice(input([2, 3, 2, 2, 3]), [1, 1, 0, 1, 0], [1, 2, 2, 1, 2]),
    tf.slice(input([4, 4]), [1, 1], [-1, 2]), // -1: to the end
    tf.slice(input([4, 3, 2, 5]), [1, 1, 0, 0], [2, 2, 2, 5]), // whole trailing axes: one run per outer index
    tf.slice(input([4, 3, 2, 5]), [2, 0, 0, 0], [1, 3, 2, 5]), // whole but for the first: one run
  ]);
  assert.deepEqual(wasm, cpu);
});

test("wasm kernels - unstack along each axis and split into unequal sizes: exactly the cpu backend's", async () => {
  const { cpu, wasm } = await onBothBackends(() => [
    ...[0, 1, 2].flatMap((axis) => tf.unstack(input([3, 4, 5]), axis)),
    ...tf.split(input([6, 9]), [2, 3, 4], 1),
    ...tf.split(input([6, 9]), 3, 0),
    ...tf.split(input([2, 6, 4]), [1, 5], 1),
  ]);
  assert.deepEqual(wasm, cpu);
});

function assertClose(actual: number[][], expected: number[][], tolerance: number): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((values, t) =>
    values.forEach((value, i) => {
      const want = expected[t]?.[i] ?? NaN;
      assert.ok(
        Math.abs(value - want) <= tolerance * (1 + Math.abs(want)),
        `tensor ${t}[${i}]: ${value} vs ${want}`,
      );
    }),
  );
}

test("wasm kernels - the embedding gradient (gather's, an UnsortedSegmentSum) matches cpu", async () => {
  const { cpu, wasm } = await onBothBackends(() => {
    const table = input([7, 3]);
    const ids = tf.tensor1d([0, 3, 3, 6, 1, 3], "int32");
    const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, ids), input([6, 3]))))(table);
    return [grad];
  });
  assertClose(wasm, cpu, 1e-6);
});

test("wasm kernels - batched matmul as per-slice 2-D products, and both gradients, match cpu", async () => {
  const { cpu, wasm } = await onBothBackends(() => {
    const a = tf.randomNormal([5, 4, 3], 0, 1, "float32", 1) as tf.Tensor3D;
    const b = tf.randomNormal([5, 3, 6], 0, 1, "float32", 2) as tf.Tensor3D;
    const weights = tf.randomNormal([5, 4, 6], 0, 1, "float32", 3);
    const loss = (x: tf.Tensor, y: tf.Tensor) =>
      tf.sum(tf.mul(matMul(x as tf.Tensor3D, y as tf.Tensor3D), weights));
    const [da, db] = tf.grads(loss)([a, b]);
    return [matMul(a, b), da as tf.Tensor, db as tf.Tensor];
  });
  assertClose(wasm, cpu, 1e-5);
});

test("wasm kernels - fused LayerNorm, gelu_new and a linear layer's bias, values and gradients, match cpu's composite ops", async () => {
  // Widths of 18 (LayerNorm) and 7 (the bias): four-lane SIMD and its scalar tail in layer-norm.c and
  // column-sum.c.
  const { cpu, wasm } = await onBothBackends(() => {
    const x = tf.randomNormal([6, 4, 18], 0, 2, "float32", 4);
    const gain = tf.randomNormal([18], 1, 0.1, "float32", 5) as tf.Tensor1D;
    const bias = tf.randomNormal([18], 0, 0.1, "float32", 6) as tf.Tensor1D;
    const weight = tf.randomNormal([18, 7], 0, 0.3, "float32", 7) as tf.Tensor2D;
    const b2 = tf.randomNormal([7], 0, 0.1, "float32", 8) as tf.Tensor1D;
    const upstream = tf.randomNormal([24, 7], 0, 1, "float32", 9);
    const network = (xs: tf.Tensor, g: tf.Tensor, b: tf.Tensor, w: tf.Tensor, c: tf.Tensor) => {
      const normed = layerNorm(xs, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5);
      const hidden = geluNew(tf.reshape(normed, [24, 18]) as tf.Tensor2D);
      return linear(hidden, w as tf.Tensor2D, c as tf.Tensor1D);
    };
    const out = network(x, gain, bias, weight, b2);
    const grads = tf.grads((...args: tf.Tensor[]) =>
      tf.sum(tf.mul(network(...(args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor])), upstream)),
    )([x, gain, bias, weight, b2]);
    return [out, geluNew(tf.linspace(-12, 12, 97)), ...grads];
  });
  assertClose(wasm, cpu, 2e-5);
});

test("wasm kernels - transposes of matrices (tiled, any size) and of more axes (wasm's own): exactly the cpu backend's", async () => {
  const { cpu, wasm } = await onBothBackends(() => [
    tf.transpose(input([1, 1])),
    tf.transpose(input([3, 5])), // smaller than one 8 × 8 tile
    tf.transpose(input([19, 13])), // partial tiles on both axes
    tf.transpose(input([64, 24])),
    tf.transpose(input([17, 9], "int32")),
    tf.transpose(input([6, 7]), [0, 1]), // the identity permutation (gather's gradient asks for it)
    tf.transpose(input([2, 3, 4]), [0, 2, 1]),
    tf.transpose(input([2, 3, 4, 5]), [0, 2, 1, 3]),
    tf.cast(tf.transpose(tf.greater(input([5, 11]), 0)), "int32"), // bool: the byte path
  ]);
  assert.deepEqual(wasm, cpu);
});

test("wasm kernels - gather along each axis, float32 and int32, repeated ids: exactly the cpu backend's", async () => {
  const { cpu, wasm } = await onBothBackends(() => {
    const ids = tf.tensor1d([4, 0, 4, 2], "int32");
    return [
      tf.gather(input([5, 3]), ids),
      tf.gather(input([5, 3], "int32"), ids),
      tf.gather(input([2, 5, 3]), ids, 1),
      tf.gather(input([3, 5]), ids, 1),
      tf.gather(input([3, 5]), ids, -1), // a negative axis
      tf.gather(input([5, 3]), tf.scalar(2, "int32")), // a scalar index: one row, its axis gone
      tf.gather(input([5, 3]), tf.tensor2d([0, 1, 4, 4], [2, 2], "int32")), // [2, 2] ids → [2, 2, 3]
      tf.gather(input([2, 5, 3]), tf.tensor2d([1, 0, 4, 4], [2, 2], "int32"), 1, 1), // batchDims 1: wasm's own
    ];
  });
  assert.deepEqual(wasm, cpu);
});

test("wasm kernels - a gather index out of range fails naming the index and the range", async () => {
  await selectBackend("wasm");
  assert.throws(
    () => tf.gather(input([5, 3]), tf.tensor1d([1, 5], "int32")),
    /index value 5 is not in \[0, 4\]/,
  );
});

test("wasm kernels - imtrain's are the registered ones, and wasm's own they hand back to work after the engine is reset", async () => {
  await selectBackend("wasm");
  for (const kernel of WASM_TRAINING_KERNELS)
    assert.equal(tf.getKernel(kernel.kernelName, "wasm")?.kernelFunc, kernel.kernelFunc, kernel.kernelName);
  // A new wasm backend instance: wasm's own Transpose (a 3-D permutation, and its reductions over a leading
  // axis, which transpose first) must be set up again through the setup that ours kept.
  tf.engine().reset();
  const { cpu, wasm } = await onBothBackends(() => [
    tf.transpose(input([2, 3, 4]), [2, 0, 1]),
    tf.sum(input([6, 5]), 0),
  ]);
  assert.deepEqual(wasm, cpu);
});

test("wasm kernels - AdamW's fused update (adamw.c) over three steps matches cpu's composite, decayed and not, sizes off the SIMD width", async () => {
  const shapes = new Map<string, number[]>([
    ["w", [7, 5]], // decayed (a matrix); 35 floats: SIMD and a tail of 3
    ["b", [6]], // not decayed
  ]);
  const random = mulberry32(11);
  const gradients = [1, 2, 3].map(() => Float32Array.from({ length: 41 }, () => random() * 2 - 1));
  const run = async (backend: string) => {
    if (backend === "wasm") await selectBackend("wasm");
    else await tf.setBackend(backend);
    const params = new Map(
      [...shapes].map(([name, shape]) => [
        name,
        tf.variable(
          tf.tensor(
            input(shape)
              .dataSync()
              .map((x) => x / 9),
            shape,
          ),
        ),
      ]),
    );
    const optimizer = new AdamW(params, { beta1: 0.9, beta2: 0.95, adamEpsilon: 1e-8, weightDecay: 0.1 });
    const layout = new StepBufferLayout(shapes);
    const profile = await tf.profile(() => {
      for (const g of gradients) optimizer.apply(layout, g, 3e-3);
    });
    const fused = profile.kernels.filter((k) => k.name === "ImtrainAdamW").length;
    assert.equal(fused, backend === "wasm" ? 6 : 0, `${backend}: fused AdamW kernels`);
    const values = [...params.values()].map((p) => Array.from(p.dataSync()));
    params.forEach((p) => p.dispose());
    return values;
  };
  const [cpu, wasm] = [await run("cpu"), await run("wasm")];
  assertClose(wasm, cpu, 1e-6);
});

test("wasm kernels - AdamW's fused update refuses gradients outside g, and the optimizer a parameter the step buffer lacks", async () => {
  await selectBackend("wasm");
  const param = tf.zeros([2, 3]);
  const [m, v] = [tf.zerosLike(param), tf.zerosLike(param)];
  const g = tf.zeros([8]);
  const update = { beta1: 0.9, beta2: 0.95, epsilon: 1e-8, correction1: 0.1, correction2: 0.05, lr: 1e-3 };
  const run = (gradientOffset: number) =>
    tf.engine().runKernel("ImtrainAdamW", { param, m, v, g }, { ...update, decay: 0, gradientOffset });
  tf.dispose(run(2) as tf.Tensor[]); // [2, 8): inside
  assert.throws(() => run(3), /AdamW: gradients \[3, 9\) are not inside g's 8 floats/);
  assert.throws(() => run(-1), /AdamW: gradients \[-1, 5\)/);
  const optimizer = new AdamW(new Map([["w", tf.variable(param)]]), {
    beta1: 0.9,
    beta2: 0.95,
    adamEpsilon: 1e-8,
    weightDecay: 0,
  });
  const layout = new StepBufferLayout(new Map([["other", [6]]]));
  assert.throws(() => optimizer.apply(layout, new Float32Array(layout.size), 1e-3), /no gradients for w/);
});
