// Causal self-attention as two wasm kernels (forward, backward) of imtrain's own module
// (shared/backend/wasm/attention.c, SIMD128; wasm-module.ts), working in place on tfjs-backend-wasm's heap: one call a layer
// where tfjs composes ~20 kernels (a 2-D product per batch entry and head among them), and as many for
// the gradient. shared/model/ops.ts uses them where they are registered (names and contract:
// fused-kernels.ts; webgpu's: webgpu-fused-kernels.ts) and the composite elsewhere.
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { ATTENTION_KERNELS, attentionShape, type AttentionAttrs } from "./fused-kernels.js";
import { moduleHeap } from "./wasm-module.js";

/** qkv [B·T, 3d] → context [B·T, d] and the attention weights [B·heads, T, T] (zero above the diagonal). */
const causalAttention: KernelConfig = {
  kernelName: ATTENTION_KERNELS.forward,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { kernels, output, at, withScratch } = moduleHeap(backend);
    const { qkv } = inputs as { qkv: TensorInfo };
    const shape = attrs as unknown as AttentionAttrs;
    const [B, T, H, hs] = attentionShape(qkv, shape);
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
    const [B, T, H, hs] = attentionShape(qkv, shape);
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
