// The fused training kernels' names and contracts, one per elementwise chain or reduction of a GPT-2 step
// that tfjs composes from many small kernels: LayerNorm and its gradient, gelu_new and its gradient, a
// bias's gradient (a column sum) and AdamW, and causal self-attention. Each backend that has them registers
// all eight under these names (wasm: wasm-fused-kernels.ts and wasm-attention-kernels.ts; webgpu:
// webgpu-fused-kernels.ts); shared/model/ops.ts and shared/train/adamw.ts run them where they are
// registered and the composite ops everywhere else.
//
//   ImtrainLayerNorm       x [..., d], gain [d], bias [d], attr eps → y (x's shape), mean [rows], 1/σ [rows]
//   ImtrainLayerNormGrad   x, gain, mean, 1/σ, dy → dx, dgain, dbias
//   ImtrainColumnSum       x [..., m] → [m], the sum over every other axis
//   ImtrainAdamW           param, m, v, g (all parameters' gradients), attrs AdamWUpdate → param′, m′, v′
//   ImtrainGeluNew         x → gelu_new(x), σ(z) (kept for the backward pass)
//   ImtrainGeluNewGrad     x, σ(z), dy → dx
// and causal self-attention (ATTENTION_KERNELS), attrs AttentionAttrs:
//   ImtrainCausalAttention      qkv [B·T, 3d] → context [B·T, d], the weights [B·heads, T, T] (0 above the
//                               diagonal)
//   ImtrainCausalAttentionGrad  qkv, the weights, context, dContext → dqkv [B·T, 3d]
import * as tf from "@tensorflow/tfjs-core";
import type { TensorInfo } from "@tensorflow/tfjs-core";

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
  /** Where this parameter's gradients start in g, in floats (g holds every parameter's, one upload). */
  readonly gradientOffset: number;
}

/** Rows and width of a tensor seen as [rows, width], width its last axis (LayerNorm's rows, a column sum's). */
export function rowsOf(x: TensorInfo): [number, number] {
  const width = x.shape[x.shape.length - 1] ?? 1;
  return [tf.util.sizeFromShape(x.shape) / width, width];
}

/** True where the active backend has the fused kernels (wasm and webgpu, once registered). */
export function hasFusedKernels(): boolean {
  return tf.getKernel(FUSED_KERNELS.layerNorm, tf.getBackend()) !== undefined;
}

export const ATTENTION_KERNELS = {
  forward: "ImtrainCausalAttention",
  backward: "ImtrainCausalAttentionGrad",
} as const;

/** The attention kernels' attributes: the batch (B of qkv's B·T rows), the heads, and 1/√(head size). */
export interface AttentionAttrs {
  readonly batch: number;
  readonly heads: number;
  readonly scale: number;
}

/** The shape of qkv [B·T, 3d] read with the attributes: [B, T, heads, head size]. */
export function attentionShape(
  qkv: TensorInfo,
  { batch, heads }: AttentionAttrs,
): [number, number, number, number] {
  const [rows = 0, width = 0] = qkv.shape;
  const length = rows / batch;
  const headSize = width / 3 / heads;
  if (qkv.shape.length !== 2 || !Number.isInteger(length) || !Number.isInteger(headSize)) {
    throw new Error(
      `attention: qkv [${qkv.shape.join(", ")}] is not [B·T, 3·heads·hs] for B ${batch}, ${heads} heads`,
    );
  }
  return [batch, length, heads, headSize];
}

/** True where the active backend has the attention kernels (wasm and webgpu, once registered). */
export function hasAttentionKernels(): boolean {
  return tf.getKernel(ATTENTION_KERNELS.forward, tf.getBackend()) !== undefined;
}

/**
 * Removes the active backend's fused kernels, so ops.ts and adamw.ts run the composite ops (the bench's
 * --composite-ops, to measure one against the other); returns the names removed.
 */
export function unregisterFusedKernels(): string[] {
  const backend = tf.getBackend();
  const names = [...Object.values(FUSED_KERNELS), ...Object.values(ATTENTION_KERNELS)];
  const registered = names.filter((name) => tf.getKernel(name, backend) !== undefined);
  for (const name of registered) tf.unregisterKernel(name, backend);
  return registered;
}

/** Throws unless `g` holds a parameter of `size` floats at `gradientOffset` (AdamW's kernels read it there). */
export function checkGradientOffset(gradientOffset: number, size: number, g: TensorInfo): void {
  const floats = tf.util.sizeFromShape(g.shape);
  if (!Number.isInteger(gradientOffset) || gradientOffset < 0 || gradientOffset + size > floats)
    throw new RangeError(
      `AdamW: gradients [${gradientOffset}, ${gradientOffset + size}) are not inside g's ${floats} floats`,
    );
}
