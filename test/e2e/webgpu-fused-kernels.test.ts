// The fused kernels on webgpu (shared/backend/webgpu-fused-kernels.ts), on a software GPU, against the
// composite ops on cpu: LayerNorm, gelu_new and a linear layer's bias, values and gradients, at widths
// below, at and above a reduction workgroup's 64 lanes; causal self-attention and its gradient, from one
// position to more than 64 and a head wider than 64; dispatches of more than 65,535 workgroups (which tfjs
// folds into two dimensions); and three AdamW steps. Run in a child process
// (test/support/webgpu-fused-check.ts), since Dawn keeps its process alive.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { runNodeScript } from "../support/cli.js";
import { requireSoftwareGpu } from "../support/gpu.js";

const CHECK = join(dirname(fileURLToPath(import.meta.url)), "../support/webgpu-fused-check.js");

test(
  "webgpu fused kernels - attention, LayerNorm, gelu_new, a bias's gradient and AdamW match cpu's composite ops, and ran",
  { timeout: 180_000 },
  async (t) => {
    if (!requireSoftwareGpu(t)) return;
    const result = await runNodeScript(CHECK, []);
    assert.equal(result.status, 0, result.stderr.slice(-3000));
    const { errors, fusedRuns, aboveDiagonal } = JSON.parse(
      result.stdout.trim().split("\n").pop() ?? "{}",
    ) as {
      errors: Record<string, number>;
      fusedRuns: Record<string, number>;
      aboveDiagonal: number;
    };
    assert.deepEqual(Object.keys(errors).sort(), [
      "adamw",
      "attention B1 T3 H1 hs70",
      "attention B1 T65 H1024 hs1",
      "attention B1 T70 H3 hs8",
      "attention B2 T1 H2 hs3",
      "attention B2 T7 H2 hs5",
      "network 130x100",
      "network 1x64",
      "network 24x18",
      "network 65600x2",
    ]);
    assert.equal(aboveDiagonal, 0, "attention weights above the diagonal are zeros");
    for (const [name, error] of Object.entries(errors))
      assert.ok(error <= (name === "adamw" ? 1e-6 : 2e-5), `${name}: largest error ${error}`);
    // Four networks, each run forward twice (for its value, and under tf.grads) and backward once, and
    // gelu_new of a range once more; five attentions, likewise; 3 AdamW steps × 2 parameters.
    assert.deepEqual(fusedRuns, {
      ImtrainCausalAttention: 10,
      ImtrainCausalAttentionGrad: 5,
      ImtrainLayerNorm: 8,
      ImtrainLayerNormGrad: 4,
      ImtrainGeluNew: 12,
      ImtrainGeluNewGrad: 4,
      ImtrainColumnSum: 4,
      ImtrainAdamW: 6,
    });
  },
);
