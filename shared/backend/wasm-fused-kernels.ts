// Fused kernels for the elementwise chains of a GPT-2 step on wasm, as loops over the wasm heap: tfjs
// composes LayerNorm, AdamW, gelu_new and a bias's gradient from 6–30 small kernels each (every one a pass over
// memory plus ~20 µs of dispatch, and reductions over rows that wasm can only do after a transpose),
// which after the matmuls were most of a step (measured with tf.profile: `npm run bench` figures, README).
// Each forward kernel has its gradient kernel; shared/model/ops.ts wires them into autodiff and uses the
// composite ops on every other backend. Each runs in imtrain's wasm module (shared/backend/wasm/*.c,
// SIMD128; wasm-module.ts): as JavaScript loops over the heap they ran at 1–15 ns an element, where
// SIMD runs at a fraction of one.
import * as tf from "@tensorflow/tfjs-core";
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { wasmHeap } from "./wasm-heap.js";
import { pointer, wasmKernels, withScratch } from "./wasm-module.js";

/** The kernel names, registered on wasm only. */
export const FUSED_KERNELS = {
  layerNorm: "ImtrainLayerNorm",
  layerNormGrad: "ImtrainLayerNormGrad",
  columnSum: "ImtrainColumnSum",
  adamW: "ImtrainAdamW",
  gelu: "ImtrainGeluNew",
  geluGrad: "ImtrainGeluNewGrad",
} as const;

/** AdamW's per-step constants, as the fused update takes them. */
export interface AdamWUpdate {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  /** 1 − β1^t and 1 − β2^t. */
  readonly correction1: number;
  readonly correction2: number;
  readonly lr: number;
  /** lr·weight decay for this parameter (0 where it is not decayed). */
  readonly decay: number;
}

/** Rows and width of a tensor seen as [rows, width], width its last axis. */
function rowsOf(x: TensorInfo): [number, number] {
  const width = x.shape[x.shape.length - 1] ?? 1;
  return [tf.util.sizeFromShape(x.shape) / width, width];
}

/** x [..., d], gain [d], bias [d] → y (the shape of x), mean and 1/σ of each row [rows]: layer-norm.c. */
const layerNorm: KernelConfig = {
  kernelName: FUSED_KERNELS.layerNorm,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const kernels = wasmKernels(backend);
    const { x, gain, bias } = inputs as { x: TensorInfo; gain: TensorInfo; bias: TensorInfo };
    const { eps } = attrs as unknown as { eps: number };
    const wasm = wasmHeap(backend);
    const [rows, d] = rowsOf(x);
    const y = wasm.makeOutput([...x.shape], "float32");
    const mean = wasm.makeOutput([rows], "float32");
    const rstd = wasm.makeOutput([rows], "float32");
    const at = (t: TensorInfo) => pointer(backend, t);
    kernels.layer_norm_forward(at(x), at(gain), at(bias), at(y), at(mean), at(rstd), rows, d, eps);
    return [y, mean, rstd];
  },
};

/** x, gain, the forward's mean and 1/σ, dy → dx, dgain, dbias: layer-norm.c. */
const layerNormGrad: KernelConfig = {
  kernelName: FUSED_KERNELS.layerNormGrad,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend }) => {
    const kernels = wasmKernels(backend);
    const { x, gain, mean, rstd, dy } = inputs as Record<"x" | "gain" | "mean" | "rstd" | "dy", TensorInfo>;
    const wasm = wasmHeap(backend);
    const [rows, d] = rowsOf(x);
    const dx = wasm.makeOutput([...x.shape], "float32");
    const dgain = wasm.makeOutput([d], "float32");
    const dbias = wasm.makeOutput([d], "float32");
    const at = (t: TensorInfo) => pointer(backend, t);
    withScratch(backend, kernels.layer_norm_backward_scratch(d), (scratch) => {
      const [xs, gains, means, rstds, dys] = [x, gain, mean, rstd, dy].map(at) as [
        number,
        number,
        number,
        number,
        number,
      ];
      kernels.layer_norm_backward(
        xs,
        gains,
        means,
        rstds,
        dys,
        at(dx),
        at(dgain),
        at(dbias),
        at(scratch),
        rows,
        d,
      );
    });
    return [dx, dgain, dbias];
  },
};

/** x [..., m] → the sum over all leading axes [m]: a bias's gradient, without wasm's transpose-then-sum. */
const columnSum: KernelConfig = {
  kernelName: FUSED_KERNELS.columnSum,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend }) => {
    const kernels = wasmKernels(backend);
    const { x } = inputs as { x: TensorInfo };
    const [rows, m] = rowsOf(x);
    const out = wasmHeap(backend).makeOutput([m], "float32");
    const at = (t: TensorInfo) => pointer(backend, t);
    withScratch(backend, kernels.column_sum_scratch(m), (scratch) =>
      kernels.column_sum(at(x), at(out), at(scratch), rows, m),
    );
    return out;
  },
};

/** param, m, v, g → param′, m′, v′: AdamW's ~12 elementwise kernels per parameter as one pass (adamw.c). */
const adamW: KernelConfig = {
  kernelName: FUSED_KERNELS.adamW,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const kernels = wasmKernels(backend);
    const { param, m, v, g } = inputs as Record<"param" | "m" | "v" | "g", TensorInfo>;
    const { beta1, beta2, epsilon, correction1, correction2, lr, decay } = attrs as unknown as AdamWUpdate;
    const wasm = wasmHeap(backend);
    const outputs = [param, m, v].map((t) => wasm.makeOutput([...t.shape], "float32"));
    const [newParam, newM, newV] = outputs as [TensorInfo, TensorInfo, TensorInfo];
    const at = (t: TensorInfo) => pointer(backend, t);
    const n = tf.util.sizeFromShape(param.shape);
    kernels.adamw_update(
      at(param),
      at(m),
      at(v),
      at(g),
      at(newParam),
      at(newM),
      at(newV),
      n,
      beta1,
      beta2,
      epsilon,
      correction1,
      correction2,
      lr,
      decay,
    );
    return outputs;
  },
};

/** x → gelu_new(x) and σ(z), kept for the backward pass (gelu.c). */
const gelu: KernelConfig = {
  kernelName: FUSED_KERNELS.gelu,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend }) => {
    const kernels = wasmKernels(backend);
    const { x } = inputs as { x: TensorInfo };
    const wasm = wasmHeap(backend);
    const [y, s] = [wasm.makeOutput([...x.shape], "float32"), wasm.makeOutput([...x.shape], "float32")];
    const at = (t: TensorInfo) => pointer(backend, t);
    kernels.gelu_forward(at(x), at(y), at(s), tf.util.sizeFromShape(x.shape));
    return [y, s];
  },
};

/** x, σ(z) from the forward pass, dy → dx (gelu.c). */
const geluGrad: KernelConfig = {
  kernelName: FUSED_KERNELS.geluGrad,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend }) => {
    const kernels = wasmKernels(backend);
    const { x, s, dy } = inputs as Record<"x" | "s" | "dy", TensorInfo>;
    const dx = wasmHeap(backend).makeOutput([...x.shape], "float32");
    const at = (t: TensorInfo) => pointer(backend, t);
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

/** True where the fused kernels run: wasm, once registerWasmTrainingKernels has run. */
export function hasFusedKernels(): boolean {
  return tf.getBackend() === "wasm" && tf.getKernel(FUSED_KERNELS.layerNorm, "wasm") !== undefined;
}
