// Building blocks of the GPT-2 forward pass, in plain tfjs-core so autodiff covers them.
import * as tf from "@tensorflow/tfjs-core";
import { hasFastBatchedMatMul, hasFastTransposedMatMul } from "../backend/select.js";
import {
  ATTENTION_KERNELS,
  FUSED_KERNELS,
  GELU_NEW,
  hasAttentionKernels,
  hasFusedKernels,
  type AttentionAttrs,
} from "../backend/fused-kernels.js";

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

/** The value `cache` holds for `key`, made by `make` and kept on first use. */
function cached<K, V>(
  cache: { get(key: K): V | undefined; set(key: K, value: V): unknown },
  key: K,
  make: () => V,
): V {
  let value = cache.get(key);
  if (value === undefined) {
    value = make();
    cache.set(key, value);
  }
  return value;
}

/** LayerNorm's forward and backward for one eps (an attribute, and customGrad differentiates tensors only). */
const layerNorms = new Map<number, (x: tf.Tensor, gain: tf.Tensor, bias: tf.Tensor) => tf.Tensor>();

function layerNormFor(eps: number): (x: tf.Tensor, gain: tf.Tensor, bias: tf.Tensor) => tf.Tensor {
  return cached(
    layerNorms,
    eps,
    () =>
      tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
        const [x, gain, bias, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
        if (hasFusedKernels()) {
          const [y, mean, rstd] = runFused(FUSED_KERNELS.layerNorm, { x, gain, bias }, { eps }) as [
            tf.Tensor,
            tf.Tensor,
            tf.Tensor,
          ];
          save([x, gain, mean, rstd]);
          return {
            value: y,
            gradFunc: (dy, saved) => {
              const [sx, sgain, smean, srstd] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
              const inputs = { x: sx, gain: sgain, mean: smean, rstd: srstd, dy: dy as tf.Tensor };
              return runFused(FUSED_KERNELS.layerNormGrad, inputs);
            },
          };
        }
        // Composite (cpu, and backends without the fused kernels), with the backward written out: tfjs's own gradients of mean and rsqrt
        // upload a ones tensor of x's shape and a few scalars per LayerNorm (on a GPU, host copies that grow
        // with the model).
        const centred = tf.sub(x, tf.mean(x, -1, true));
        const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), -1, true), constant(eps)));
        const normalised = tf.mul(centred, rstd);
        save([normalised, rstd, gain]);
        return {
          value: tf.add(tf.mul(normalised, gain), bias),
          gradFunc: (dy, saved) => {
            const [xhat, srstd, sgain] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
            const g = dy as tf.Tensor;
            const width = xhat.shape.at(-1) ?? 1;
            // dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·gain; gain and bias sum over the rows.
            const dxhat = tf.mul(g, sgain);
            const dx = tf.mul(
              srstd,
              tf.sub(
                tf.sub(dxhat, tf.mean(dxhat, -1, true)),
                tf.mul(xhat, tf.mean(tf.mul(dxhat, xhat), -1, true)),
              ),
            );
            const rowsOf = (t: tf.Tensor) => tf.reshape(t, [-1, width]);
            return [dx, tf.sum(rowsOf(tf.mul(g, xhat)), 0), tf.sum(rowsOf(g), 0)];
          },
        };
      }) as (x: tf.Tensor, gain: tf.Tensor, bias: tf.Tensor) => tf.Tensor,
  );
}

/** LayerNorm over the last axis. */
export function layerNorm<T extends tf.Tensor>(x: T, gain: tf.Tensor1D, bias: tf.Tensor1D, eps: number): T {
  return layerNormFor(eps)(x, gain, bias) as T;
}

/**
 * Scalars made once per backend and value: a number in an op is a new upload each time (on a GPU, a copy).
 * Keyed by the backend instance, not its name: after an engine reset or a backend re-registered under the
 * same name, the old scalars' data is gone with the old instance.
 */
const constants = new WeakMap<tf.KernelBackend, Map<number, tf.Scalar>>();

function constant(value: number): tf.Scalar {
  const scalars = cached(constants, tf.backend(), () => new Map<number, tf.Scalar>());
  return cached(scalars, value, () => tf.keep(tf.scalar(value)));
}

/**
 * GPT-2's `gelu_new`, 0.5·x·(1 + tanh(u)) with u = √(2/π)·(x + 0.044715·x³), computed as x·σ(2u) (the
 * same function: 0.5·(1 + tanh(u)) = σ(2u)) because every backend has a fast sigmoid and few a fast tanh:
 * on wasm, XNNPACK's sigmoid of a [1024, 512] tensor takes 0.6 ms against 11 ms for its tanh and 9 ms for
 * a tanh through exp in JavaScript. z = 2u is x·(a + b·x²) with a = 2√(2/π), b = 0.044715·a, not a
 * pow(x, 3) (Pow's gradient also differentiates the exponent), and every number is a cached constant, not
 * a per-op upload. The backward is written out: y′ = s + x·s·(1 − s)·z′ with s = σ(z),
 * z′ = 2√(2/π)·(1 + 3·0.044715·x²). On wasm and webgpu, fused kernels (fused-kernels.ts) instead of ~6 and ~8.
 */
const geluNewSigmoid = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  if (hasFusedKernels()) {
    const [y, s] = runFused(FUSED_KERNELS.gelu, { x }) as [tf.Tensor, tf.Tensor];
    save([x, s]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [sx, ss] = saved as [tf.Tensor, tf.Tensor];
        return runFused(FUSED_KERNELS.geluGrad, { x: sx, s: ss, dy: dy as tf.Tensor });
      },
    };
  }
  const z = tf.mul(x, tf.add(constant(GELU_NEW.a), tf.mul(tf.square(x), constant(GELU_NEW.b))));
  const s = tf.sigmoid(z);
  save([x, s]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy, saved) => {
      const [sx, ss] = saved as [tf.Tensor, tf.Tensor];
      const slope = tf.add(constant(GELU_NEW.a), tf.mul(tf.square(sx), constant(3 * GELU_NEW.b)));
      const sigmoidSlope = tf.mul(ss, tf.sub(constant(1), ss));
      return tf.mul(dy as tf.Tensor, tf.add(ss, tf.mul(tf.mul(sx, sigmoidSlope), slope)));
    },
  };
}) as (x: tf.Tensor) => tf.Tensor;

/** GPT-2's `gelu_new`: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluNew<T extends tf.Tensor>(x: T): T {
  return geluNewSigmoid(x) as T;
}

/**
 * The mask of the longest sequence so far, per backend instance (an engine reset frees the old one's);
 * shorter ones are its top-left corner. One per backend, so memory is bounded.
 */
const longestMasks = new WeakMap<tf.KernelBackend, tf.Tensor2D>();

/**
 * [T, T] additive mask: 0 where key ≤ query, a large negative number above the diagonal. Grows only
 * between forward passes (each micro-batch's backward has finished before the next one's forward).
 */
export function causalMask(length: number): tf.Tensor2D {
  const backend = tf.backend();
  let longest = longestMasks.get(backend);
  if (longest === undefined || longest.shape[0] < length) {
    const values = new Float32Array(length * length);
    for (let q = 0; q < length; q++) for (let k = q + 1; k < length; k++) values[q * length + k] = -1e9;
    longest?.dispose();
    longest = tf.keep(tf.tensor2d(values, [length, length]));
    longestMasks.set(backend, longest);
  }
  return longest.shape[0] === length ? longest : tf.slice(longest, [0, 0], [length, length]);
}

/** Attention's composite form: every backend has these ops, and autodiff differentiates them. */
function causalSelfAttentionComposite(
  qkv: tf.Tensor2D,
  { batch: B, heads, scale }: AttentionAttrs,
): tf.Tensor2D {
  const [rows = 0, width = 0] = qkv.shape;
  const [T, d] = [rows / B, width / 3];
  const hs = d / heads;
  // [B·T, 3d] → 3 × [B·nh, T, hs]
  const [q, k, v] = tf
    .split(qkv, 3, 1)
    .map((part) =>
      tf.reshape(tf.transpose(tf.reshape(part, [B, T, heads, hs]), [0, 2, 1, 3]), [B * heads, T, hs]),
    ) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
  const scores = tf.add(
    tf.mul(matMul(q, tf.transpose(k, [0, 2, 1]) as tf.Tensor3D), constant(scale)),
    causalMask(T),
  );
  const context = matMul(tf.softmax(scores) as tf.Tensor3D, v); // [B·nh, T, hs]
  return tf.reshape(tf.transpose(tf.reshape(context, [B, heads, T, hs]), [0, 2, 1, 3]), [B * T, d]);
}

/** Attention as two fused kernels, for one shape (attributes; customGrad differentiates tensors only). */
const fusedAttentions = new Map<string, (qkv: tf.Tensor) => tf.Tensor>();

function fusedAttentionFor(attrs: AttentionAttrs): (qkv: tf.Tensor) => tf.Tensor {
  const key = `${attrs.batch}:${attrs.heads}:${attrs.scale}`;
  return cached(
    fusedAttentions,
    key,
    () =>
      tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
        const [qkv, save] = args as [tf.Tensor, tf.GradSaveFunc];
        const [context, probs] = runFused(ATTENTION_KERNELS.forward, { qkv }, attrs) as [
          tf.Tensor,
          tf.Tensor,
        ];
        save([qkv, probs, context]);
        return {
          value: context,
          gradFunc: (dy, saved) => {
            const [sqkv, sprobs, scontext] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
            const inputs = { qkv: sqkv, probs: sprobs, context: scontext, dContext: dy as tf.Tensor };
            return runFused(ATTENTION_KERNELS.backward, inputs, attrs);
          },
        };
      }) as (qkv: tf.Tensor) => tf.Tensor,
  );
}

/**
 * Causal multi-head self-attention: qkv [B·T, 3d] (queries, keys and values side by side, as GPT-2's
 * c_attn makes them, head h at columns h·d/heads of each) → the heads' contexts merged, [B·T, d], scores
 * scaled by 1/√(head size). On wasm and webgpu, two kernels of our own (forward, backward); elsewhere tfjs
 * ops.
 */
export function causalSelfAttention(qkv: tf.Tensor2D, batch: number, heads: number): tf.Tensor2D {
  const headSize = (qkv.shape[1] ?? 0) / 3 / heads;
  const attrs: AttentionAttrs = { batch, heads, scale: 1 / Math.sqrt(headSize) };
  return (
    hasAttentionKernels() ? fusedAttentionFor(attrs)(qkv) : causalSelfAttentionComposite(qkv, attrs)
  ) as tf.Tensor2D;
}
