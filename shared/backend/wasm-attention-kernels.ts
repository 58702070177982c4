// Causal self-attention as two wasm kernels (forward, backward) of imtrain's own module
// (shared/backend/wasm/attention.c, SIMD128; wasm-module.ts), working in place on tfjs-backend-wasm's heap: one call a layer
// where tfjs composes ~20 kernels (a 2-D product per batch entry and head among them), and as many for
// the gradient. Registered on wasm only; shared/model/ops.ts uses them there and the composite elsewhere.
import * as tf from "@tensorflow/tfjs-core";
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { moduleHeap } from "./wasm-module.js";

export const ATTENTION_KERNELS = {
  forward: "ImtrainCausalAttention",
  backward: "ImtrainCausalAttentionGrad",
} as const;

/** The kernels' attributes: the batch (B of qkv's B·T rows), the heads, and 1/√(head size). */
export interface AttentionAttrs {
  readonly batch: number;
  readonly heads: number;
  readonly scale: number;
}

/** The shape of qkv [B·T, 3d] read with the attributes: [B, T, heads, head size]. */
function shapeOf(qkv: TensorInfo, { batch, heads }: AttentionAttrs): [number, number, number, number] {
  const [rows = 0, width = 0] = qkv.shape;
  const length = rows / batch;
  const headSize = width / 3 / heads;
  if (qkv.shape.length !== 2 || !Number.isInteger(length) || !Number.isInteger(headSize)) {
    throw new Error(
      `wasm attention: qkv [${qkv.shape.join(", ")}] is not [B·T, 3·heads·hs] for B ${batch}, ${heads} heads`,
    );
  }
  return [batch, length, heads, headSize];
}

/** qkv [B·T, 3d] → context [B·T, d] and the attention weights [B·heads, T, T] (zero above the diagonal). */
const causalAttention: KernelConfig = {
  kernelName: ATTENTION_KERNELS.forward,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { kernels, output, at, withScratch } = moduleHeap(backend);
    const { qkv } = inputs as { qkv: TensorInfo };
    const shape = attrs as unknown as AttentionAttrs;
    const [B, T, H, hs] = shapeOf(qkv, shape);
    const [context, probs] = [output([B * T, H * hs]), output([B * H, T, T])] as const;
    withScratch(kernels.attention_forward_scratch(T, hs), (scratch) =>
      kernels.attention_forward(at(qkv), at(context), at(probs), scratch, B, T, H, hs, shape.scale),
    );
    return [context, probs];
  },
};

/** qkv, probs and context as the forward left them, and dContext → dqkv [B·T, 3d]. */
const causalAttentionGrad: KernelConfig = {
  kernelName: ATTENTION_KERNELS.backward,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { kernels, output, at, withScratch } = moduleHeap(backend);
    const { qkv, probs, context, dContext } = inputs as Record<
      "qkv" | "probs" | "context" | "dContext",
      TensorInfo
    >;
    const shape = attrs as unknown as AttentionAttrs;
    const [B, T, H, hs] = shapeOf(qkv, shape);
    const dqkv = output(qkv.shape);
    withScratch(kernels.attention_backward_scratch(T, hs), (scratch) =>
      kernels.attention_backward(
        ...[at(qkv), at(probs), at(context), at(dContext), at(dqkv), scratch],
        ...[B, T, H, hs, shape.scale],
      ),
    );
    return dqkv;
  },
};

export const WASM_ATTENTION_KERNELS: readonly KernelConfig[] = [causalAttention, causalAttentionGrad];

/** True where the attention kernels run: wasm, once registerWasmTrainingKernels has run. */
export function hasAttentionKernels(): boolean {
  return tf.getBackend() === "wasm" && tf.getKernel(ATTENTION_KERNELS.forward, "wasm") !== undefined;
}
