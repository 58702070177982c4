// The fused training kernels' names and contracts, one per elementwise chain or reduction of a GPT-2 step
// that tfjs composes from many small kernels: LayerNorm and its gradient, gelu_new and its gradient, a
// bias's gradient (a column sum) and AdamW. Each backend that has them registers all six under these names
// (wasm-fused-kernels.ts, webgpu-fused-kernels.ts); shared/model/ops.ts and shared/train/adamw.ts run them
// where they are registered and the composite ops everywhere else.
//
//   ImtrainLayerNorm       x [..., d], gain [d], bias [d], attr eps → y (x's shape), mean [rows], 1/σ [rows]
//   ImtrainLayerNormGrad   x, gain, mean, 1/σ, dy → dx, dgain, dbias
//   ImtrainColumnSum       x [..., m] → [m], the sum over every other axis
//   ImtrainAdamW           param, m, v, g, attrs AdamWUpdate → param′, m′, v′
//   ImtrainGeluNew         x → gelu_new(x), σ(z) (kept for the backward pass)
//   ImtrainGeluNewGrad     x, σ(z), dy → dx
import * as tf from "@tensorflow/tfjs-core";

export const FUSED_KERNELS = {
  layerNorm: "ImtrainLayerNorm",
  layerNormGrad: "ImtrainLayerNormGrad",
  columnSum: "ImtrainColumnSum",
  adamW: "ImtrainAdamW",
  gelu: "ImtrainGeluNew",
  geluGrad: "ImtrainGeluNewGrad",
} as const;

/**
 * gelu_new(x) = x·σ(z) with z = x·(a + b·x²), a = 2√(2/π), b = 0.044715·a: GPT-2's
 * 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), since 0.5·(1 + tanh(u)) = σ(2u) (ops.ts says why σ).
 */
export const GELU_NEW = {
  a: 2 * Math.sqrt(2 / Math.PI),
  b: 2 * Math.sqrt(2 / Math.PI) * 0.044715,
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

/** True where the active backend has the fused kernels (wasm and webgpu, once registered). */
export function hasFusedKernels(): boolean {
  return tf.getKernel(FUSED_KERNELS.layerNorm, tf.getBackend()) !== undefined;
}
