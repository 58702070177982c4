// Fused kernels for the elementwise chains of a GPT-2 step on wasm: tfjs composes LayerNorm, AdamW,
// gelu_new and a bias's gradient from 6–30 small kernels each (every one a pass over memory plus ~20 µs
// of dispatch, and reductions over rows that wasm can only do after a transpose), which after the matmuls
// were most of a step (measured with tf.profile: `npm run bench` figures, README). Each forward kernel
// has its gradient kernel; shared/model/ops.ts wires them into autodiff (names and contracts:
// fused-kernels.ts; webgpu has its own, webgpu-fused-kernels.ts). Each runs in imtrain's wasm module
// (shared/backend/wasm/*.c, SIMD128; wasm-module.ts): as JavaScript loops over the heap they ran at
// 1–15 ns an element, SIMD at a fraction of one.
import * as tf from "@tensorflow/tfjs-core";
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { checkGradientOffset, FUSED_KERNELS, rowsOf, type AdamWUpdate } from "./fused-kernels.js";
import { moduleHeap } from "./wasm-module.js";

/** x [..., d], gain [d], bias [d] → y (the shape of x), mean and 1/σ of each row [rows]: layer-norm.c. */
const layerNorm: KernelConfig = {
  kernelName: FUSED_KERNELS.layerNorm,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { kernels, output, at } = moduleHeap(backend);
    const { x, gain, bias } = inputs as { x: TensorInfo; gain: TensorInfo; bias: TensorInfo };
    const { eps } = attrs as unknown as { eps: number };
    const [rows, d] = rowsOf(x);
    const [y, mean, rstd] = [output(x.shape), output([rows]), output([rows])] as const;
    kernels.layer_norm_forward(at(x), at(gain), at(bias), at(y), at(mean), at(rstd), rows, d, eps);
    return [y, mean, rstd];
  },
};

/** x, gain, the forward's mean and 1/σ, dy → dx, dgain, dbias: layer-norm.c. */
const layerNormGrad: KernelConfig = {
  kernelName: FUSED_KERNELS.layerNormGrad,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend }) => {
    const { kernels, output, at, withScratch } = moduleHeap(backend);
    const { x, gain, mean, rstd, dy } = inputs as Record<"x" | "gain" | "mean" | "rstd" | "dy", TensorInfo>;
    const [rows, d] = rowsOf(x);
    const [dx, dgain, dbias] = [output(x.shape), output([d]), output([d])] as const;
    withScratch(kernels.layer_norm_backward_scratch(d), (scratch) =>
      kernels.layer_norm_backward(
        ...[at(x), at(gain), at(mean), at(rstd), at(dy)],
        ...[at(dx), at(dgain), at(dbias), scratch, rows, d],
      ),
    );
    return [dx, dgain, dbias];
  },
};

/** x [..., m] → the sum over all leading axes [m]: a bias's gradient, without wasm's transpose-then-sum. */
const columnSum: KernelConfig = {
  kernelName: FUSED_KERNELS.columnSum,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend }) => {
    const { kernels, output, at, withScratch } = moduleHeap(backend);
    const { x } = inputs as { x: TensorInfo };
    const [rows, m] = rowsOf(x);
    const out = output([m]);
    withScratch(kernels.column_sum_scratch(m), (scratch) =>
      kernels.column_sum(at(x), at(out), scratch, rows, m),
    );
    return out;
  },
};

/** param, m, v, g → param′, m′, v′: AdamW's ~12 elementwise kernels per parameter as one pass (adamw.c). */
const adamW: KernelConfig = {
  kernelName: FUSED_KERNELS.adamW,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { kernels, output, at } = moduleHeap(backend);
    const { param, m, v, g } = inputs as Record<"param" | "m" | "v" | "g", TensorInfo>;
    const { beta1, beta2, epsilon, correction1, correction2, lr, decay, gradientOffset } =
      attrs as unknown as AdamWUpdate;
    const size = tf.util.sizeFromShape(param.shape);
    checkGradientOffset(gradientOffset, size, g);
    const [newParam, newM, newV] = [output(param.shape), output(m.shape), output(v.shape)] as const;
    kernels.adamw_update(
      ...[
        at(param),
        at(m),
        at(v),
        at(g) + gradientOffset * Float32Array.BYTES_PER_ELEMENT,
        at(newParam),
        at(newM),
        at(newV),
        size,
      ],
      ...[beta1, beta2, epsilon, correction1, correction2, lr, decay],
    );
    return [newParam, newM, newV];
  },
};

/** x → gelu_new(x) and σ(z), kept for the backward pass (gelu.c). */
const gelu: KernelConfig = {
  kernelName: FUSED_KERNELS.gelu,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend }) => {
    const { kernels, output, at } = moduleHeap(backend);
    const { x } = inputs as { x: TensorInfo };
    const [y, s] = [output(x.shape), output(x.shape)] as const;
    kernels.gelu_forward(at(x), at(y), at(s), tf.util.sizeFromShape(x.shape));
    return [y, s];
  },
};

/** x, σ(z) from the forward pass, dy → dx (gelu.c). */
const geluGrad: KernelConfig = {
  kernelName: FUSED_KERNELS.geluGrad,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend }) => {
    const { kernels, output, at } = moduleHeap(backend);
    const { x, s, dy } = inputs as Record<"x" | "s" | "dy", TensorInfo>;
    const dx = output(x.shape);
    kernels.gelu_backward(at(x), at(s), at(dy), at(dx), tf.util.sizeFromShape(x.shape));
    return dx;
  },
};

export const WASM_FUSED_KERNELS: readonly KernelConfig[] = [
  adamW,
  layerNorm,
  layerNormGrad,
  columnSum,
  gelu,
  geluGrad,
];
