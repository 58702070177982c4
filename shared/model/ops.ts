// Building blocks of the GPT-2 forward pass, in plain tfjs-core so autodiff covers them.
import * as tf from "@tensorflow/tfjs-core";
import { hasFastBatchedMatMul, hasFastTransposedMatMul } from "../backend/select.js";
import { FUSED_KERNELS, hasFusedKernels } from "../backend/wasm-fused-kernels.js";

/** Swaps the last two axes. */
function transposeLast2(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i);
  const n = perm.length;
  [perm[n - 2], perm[n - 1]] = [perm[n - 1] ?? 0, perm[n - 2] ?? 0];
  return tf.transpose(x, perm);
}

/** a @ b, not differentiated itself; a rank-3 product as one 2-D product per batch entry where that is faster. */
function product(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (a.rank !== 3 || hasFastBatchedMatMul()) return tf.matMul(a, b);
  // Attention's B·heads products: each stays on the fast 2-D kernel.
  const bs = tf.unstack(b);
  return tf.stack(tf.unstack(a).map((ai, i) => tf.matMul(ai, bs[i] as tf.Tensor)));
}

// tfjs's matMul gradient multiplies with transposeA/transposeB set, which on wasm leaves the XNNPACK
// path and runs ~10x slower; transposing explicitly (once for a whole batch) keeps every product on the
// fast kernel.
const matMulExplicitGrad = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: product(a, b),
    gradFunc: (dy, saved) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      return [product(dy as tf.Tensor, transposeLast2(sb)), product(transposeLast2(sa), dy as tf.Tensor)];
    },
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/** a @ b for rank-2 or batched rank-3 operands. */
export function matMul<R extends tf.Rank.R2 | tf.Rank.R3>(a: tf.Tensor<R>, b: tf.Tensor<R>): tf.Tensor<R> {
  return (hasFastTransposedMatMul() ? tf.matMul(a, b) : matMulExplicitGrad(a, b)) as tf.Tensor<R>;
}

/** [N, in] @ [in, out] + [out]: HF GPT-2's Conv1D layout (weights stored [in, out]). */
export function linear(x: tf.Tensor2D, weight: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor2D {
  const product = matMul(x, weight);
  return (hasFusedKernels() ? addBiasFused(product, bias) : tf.add(product, bias)) as tf.Tensor2D;
}

function runFused(name: string, inputs: tf.NamedTensorMap, attrs: object = {}): tf.Tensor[] {
  const out = tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap);
  return Array.isArray(out) ? out : [out];
}

/** y + bias, whose gradient for the bias is one pass over dy (not wasm's transpose, then sum). */
const addBiasFused = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [y, bias] = args as [tf.Tensor, tf.Tensor];
  return {
    value: tf.add(y, bias),
    gradFunc: (dy) => [dy as tf.Tensor, ...runFused(FUSED_KERNELS.columnSum, { x: dy as tf.Tensor })],
  };
}) as (y: tf.Tensor, bias: tf.Tensor) => tf.Tensor;

/** One fused LayerNorm per eps (an attribute, and customGrad differentiates tensors only). */
const fusedLayerNorms = new Map<number, (x: tf.Tensor, gain: tf.Tensor, bias: tf.Tensor) => tf.Tensor>();

function fusedLayerNorm(eps: number): (x: tf.Tensor, gain: tf.Tensor, bias: tf.Tensor) => tf.Tensor {
  let fused = fusedLayerNorms.get(eps);
  if (fused === undefined) {
    fused = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [x, gain, bias, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      const [y, mean, rstd] = runFused(FUSED_KERNELS.layerNorm, { x, gain, bias }, { eps }) as [
        tf.Tensor,
        tf.Tensor,
        tf.Tensor,
      ];
      save([x, gain, mean, rstd]);
      return {
        value: y,
        gradFunc: (dy, saved) => {
          const [sx, sgain, mean, rstd] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
          const inputs = { x: sx, gain: sgain, mean, rstd, dy: dy as tf.Tensor };
          return runFused(FUSED_KERNELS.layerNormGrad, inputs);
        },
      };
    }) as (x: tf.Tensor, gain: tf.Tensor, bias: tf.Tensor) => tf.Tensor;
    fusedLayerNorms.set(eps, fused);
  }
  return fused;
}

const geluNewFused = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  const [y, tanhs] = runFused(FUSED_KERNELS.geluNew, { x }) as [tf.Tensor, tf.Tensor];
  save([x, tanhs]);
  return {
    value: y,
    gradFunc: (dy, saved) => {
      const [sx, st] = saved as [tf.Tensor, tf.Tensor];
      return runFused(FUSED_KERNELS.geluNewGrad, { x: sx, tanhs: st, dy: dy as tf.Tensor });
    },
  };
}) as (x: tf.Tensor) => tf.Tensor;

/** LayerNorm over the last axis. */
export function layerNorm<T extends tf.Tensor>(x: T, gain: tf.Tensor1D, bias: tf.Tensor1D, eps: number): T {
  if (hasFusedKernels()) return fusedLayerNorm(eps)(x, gain, bias) as T;
  const mean = tf.mean(x, -1, true);
  const centred = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centred), -1, true);
  return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, constant(eps)))), gain), bias) as T;
}

const GELU_SCALE = Math.sqrt(2 / Math.PI);

/** Scalars made once per backend and value: a number in an op is a new upload each time (on a GPU, a copy). */
const constants = new Map<string, tf.Scalar>();

function constant(value: number): tf.Scalar {
  const key = `${tf.getBackend()}:${value}`;
  let scalar = constants.get(key);
  if (scalar === undefined) {
    scalar = tf.keep(tf.scalar(value));
    constants.set(key, scalar);
  }
  return scalar;
}

/** GPT-2's `gelu_new`: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluNew<T extends tf.Tensor>(x: T): T {
  if (hasFusedKernels()) return geluNewFused(x) as T;

  // x·x·x, not pow(x, 3): wasm's Pow and its gradient (which also differentiates the exponent) cost more
  // than the rest of GELU.
  const cube = tf.mul(tf.mul(x, x), x);
  const inner = tf.mul(tf.add(x, tf.mul(cube, constant(0.044715))), constant(GELU_SCALE));
  return tf.mul(tf.mul(x, constant(0.5)), tf.add(tf.tanh(inner), constant(1))) as T;
}

/** The mask of the longest sequence so far; shorter ones are its top-left corner. One, so memory is bounded. */
let longestMask: tf.Tensor2D | undefined;

/**
 * [T, T] additive mask: 0 where key ≤ query, a large negative number above the diagonal. Grows only
 * between forward passes (each micro-batch's backward has finished before the next one's forward).
 */
export function causalMask(length: number): tf.Tensor2D {
  if (longestMask === undefined || longestMask.shape[0] < length) {
    const values = new Float32Array(length * length);
    for (let q = 0; q < length; q++) for (let k = q + 1; k < length; k++) values[q * length + k] = -1e9;
    longestMask?.dispose();
    longestMask = tf.keep(tf.tensor2d(values, [length, length]));
  }
  return longestMask.shape[0] === length ? longestMask : tf.slice(longestMask, [0, 0], [length, length]);
}
