// npm run bench's peak_memory figure: tfjs's own peak of live tensor bytes over one optimizer step of a
// preset (forward, masked loss, backward, AdamW), next to a theoretical minimum for the same step:
//   parameters, gradients and Adam's two moments: 16 bytes per parameter (float32);
//   activations kept for the backward pass, per layer s·b·h·(68 + 10·a·s/h) bytes (Korthikanti et al.,
//   "Reducing Activation Recomputation in Large Transformer Models", 34 + 5as/h bytes in half precision,
//   doubled for float32; s sequence, b batch, h width, a heads), plus the logits and their softmax
//   (2 · b·s·V · 4 bytes).
import * as tf from "@tensorflow/tfjs-core";
import { benchModelConfig, benchStep } from "./train-step-setup.js";
import { figure, type Emit } from "./figure.js";

export async function benchPeakMemory(
  emit: Emit,
  backend: string,
  preset: string,
  batchSize: number,
  seq: number,
  vocab: number,
): Promise<void> {
  const step = benchStep(benchModelConfig(preset, vocab), batchSize, seq);
  const { params } = step;
  const shape = { backend, model: preset, params, batch: batchSize, seq, vocab };
  const name = `memory/${preset}`;
  const started = performance.now();
  let profile: Awaited<ReturnType<typeof tf.profile>>;
  try {
    profile = await tf.profile(() => step.run());
  } catch (error) {
    // wasm's heap is 32-bit (at most 4 GiB): GPT-2 small's step does not fit, and tfjs fails obscurely.
    const heap = backend === "wasm" ? " (wasm's heap is at most 4 GiB)" : "";
    emit(figure(name, NaN, "bytes", { ...shape, error: `${(error as Error).message}${heap}` }));
    return;
  }
  const seconds = (performance.now() - started) / 1000;
  const { embedDim: h, heads: a, layers } = step.config;
  const stateBytes = 16 * params;
  const activationBytes = layers * seq * batchSize * h * (68 + (10 * a * seq) / h);
  const logitBytes = 2 * batchSize * seq * vocab * 4;
  const minimumBytes = stateBytes + activationBytes + logitBytes;
  // The "ceiling" here is a floor: ratio = peak ÷ the theoretical minimum (1 is the best possible).
  const parts = {
    parameters_gradients_moments: stateBytes,
    activations: activationBytes,
    logits: logitBytes,
  };
  emit(figure(name, profile.peakBytes, "bytes", { ...shape, seconds, minimum_parts: parts }, minimumBytes));
  step.dispose();
}
