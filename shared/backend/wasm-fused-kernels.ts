// Fused kernels for the elementwise chains of a GPT-2 step on wasm, as loops over the wasm heap: tfjs
// composes LayerNorm, AdamW and a bias's gradient from 10–30 small kernels each (every one a pass over
// memory plus ~20 µs of dispatch, and reductions over rows that wasm can only do after a transpose),
// which after the matmuls were most of a step (measured with tf.profile: `npm run bench` figures, README).
// Each forward kernel has its gradient kernel; shared/model/ops.ts wires them into autodiff and uses the
// composite ops on every other backend. LayerNorm runs in imtrain's wasm module (layer-norm.c, SIMD128);
// AdamW and the bias's gradient are JavaScript loops in float64 per element, stored as float32.
// JavaScript's scalar loops run at 1–15 ns an element, where wasm's own (XNNPACK, SIMD) elementwise
// kernels run at ~0.15: a chain is fused here only where it replaces many kernels or a transpose, and
// gelu_new, which a tanh made costly in JavaScript, is wasm's own sigmoid and products (ops.ts).
import * as tf from "@tensorflow/tfjs-core";
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { floatsOf, wasmHeap } from "./wasm-heap.js";
import { pointer, wasmKernels, withScratch } from "./wasm-module.js";

/** The kernel names, registered on wasm only. */
export const FUSED_KERNELS = {
  layerNorm: "ImtrainLayerNorm",
  layerNormGrad: "ImtrainLayerNormGrad",
  columnSum: "ImtrainColumnSum",
  adamW: "ImtrainAdamW",
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
    const { x, gain, bias } = inputs as { x: TensorInfo; gain: TensorInfo; bias: TensorInfo };
    const { eps } = attrs as unknown as { eps: number };
    const wasm = wasmHeap(backend);
    const [rows, d] = rowsOf(x);
    const y = wasm.makeOutput([...x.shape], "float32");
    const mean = wasm.makeOutput([rows], "float32");
    const rstd = wasm.makeOutput([rows], "float32");
    const at = (t: TensorInfo) => pointer(backend, t);
    wasmKernels(backend).layer_norm_forward(
      at(x),
      at(gain),
      at(bias),
      at(y),
      at(mean),
      at(rstd),
      rows,
      d,
      eps,
    );
    return [y, mean, rstd];
  },
};

/** x, gain, the forward's mean and 1/σ, dy → dx, dgain, dbias: layer-norm.c. */
const layerNormGrad: KernelConfig = {
  kernelName: FUSED_KERNELS.layerNormGrad,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend }) => {
    const { x, gain, mean, rstd, dy } = inputs as Record<"x" | "gain" | "mean" | "rstd" | "dy", TensorInfo>;
    const wasm = wasmHeap(backend);
    const [rows, d] = rowsOf(x);
    const dx = wasm.makeOutput([...x.shape], "float32");
    const dgain = wasm.makeOutput([d], "float32");
    const dbias = wasm.makeOutput([d], "float32");
    const kernels = wasmKernels(backend);
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

/**
 * Σ over rows of each column, four rows at a time: one read and write of the float64 sum per four
 * elements (a row at a time, that read-modify-write was most of the cost: 1.2 ms against 0.4 for a
 * [1024, 512] sum).
 */
function columnSums(values: Float32Array, columns: number): Float64Array {
  const rows = values.length / columns;
  const sums = new Float64Array(columns);
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const a = r * columns;
    const b = a + columns;
    const c = b + columns;
    const d = c + columns;
    for (let i = 0; i < columns; i++)
      sums[i]! += values[a + i]! + values[b + i]! + (values[c + i]! + values[d + i]!);
  }
  for (; r < rows; r++) for (let i = 0; i < columns; i++) sums[i]! += values[r * columns + i]!;
  return sums;
}

/** x [..., m] → the sum over all leading axes [m]: a bias's gradient, without wasm's transpose-then-sum. */
const columnSum: KernelConfig = {
  kernelName: FUSED_KERNELS.columnSum,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    const wasm = wasmHeap(backend);
    const m = rowsOf(x)[1];
    const out = wasm.makeOutput([m], "float32");
    const sums = columnSums(floatsOf(wasm, x), m);
    wasm.typedArrayFromHeap(out).set(sums);
    return out;
  },
};

/** param, m, v, g → param′, m′, v′: AdamW's ~12 elementwise kernels per parameter as one pass. */
const adamW: KernelConfig = {
  kernelName: FUSED_KERNELS.adamW,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { param, m, v, g } = inputs as Record<"param" | "m" | "v" | "g", TensorInfo>;
    const { beta1, beta2, epsilon, correction1, correction2, lr, decay } = attrs as unknown as AdamWUpdate;
    const wasm = wasmHeap(backend);
    const outputs = [param, m, v].map((t) => wasm.makeOutput([...t.shape], "float32"));
    const [ps, ms, vs, gs, newPs, newMs, newVs] = [param, m, v, g, ...outputs].map((t) => floatsOf(wasm, t));
    // Loop invariants hoisted, and divisions by the corrections as products: a quarter faster here.
    const [keep1, keep2, shrink] = [1 - beta1, 1 - beta2, 1 - decay];
    const [step, inverse2] = [lr / correction1, 1 / correction2];
    for (let i = 0; i < ps!.length; i++) {
      const grad = gs![i]!;
      const moment1 = beta1 * ms![i]! + keep1 * grad;
      const moment2 = beta2 * vs![i]! + keep2 * grad * grad;
      newPs![i] = ps![i]! * shrink - (step * moment1) / (Math.sqrt(moment2 * inverse2) + epsilon);
      newMs![i] = moment1;
      newVs![i] = moment2;
    }
    return outputs;
  },
};

export const WASM_FUSED_KERNELS: readonly KernelConfig[] = [adamW, layerNorm, layerNormGrad, columnSum];

/** True where the fused kernels run: wasm, once registerWasmTrainingKernels has run. */
export function hasFusedKernels(): boolean {
  return tf.getBackend() === "wasm" && tf.getKernel(FUSED_KERNELS.layerNorm, "wasm") !== undefined;
}
