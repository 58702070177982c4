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

const WASM_HEAP_BYTES = 4 * 2 ** 30;
/** The smallest peak ÷ minimum measured on wasm (`memory/tiny` 3.0 at 1 × 64, `small` 5.6 at 1 × 1024). */
const WASM_PEAK_OVER_MINIMUM = 3;

export async function benchPeakMemory(
  emit: Emit,
  backend: string,
  preset: string,
  batchSize: number,
  seq: number,
  vocab: number,
): Promise<void> {
  const config = benchModelConfig(preset, vocab);
  const { embedDim: h, heads: a, layers } = config;
  const step = benchStep(config, batchSize, seq);
  const { params } = step;
  const shape = { backend, model: preset, params, batch: batchSize, seq, vocab };
  const name = `memory/${preset}`;
  const stateBytes = 16 * params;
  const activationBytes = layers * seq * batchSize * h * (68 + (10 * a * seq) / h);
  const logitBytes = 2 * batchSize * seq * vocab * 4;
  const minimumBytes = stateBytes + activationBytes + logitBytes;
  // wasm's heap is 32-bit (at most 4 GiB), and a step's peak there is 3–6× the minimum (measured): a step
  // that cannot fit is not tried, since running out of the heap leaves it unusable for what follows.
  if (backend === "wasm" && WASM_PEAK_OVER_MINIMUM * minimumBytes > WASM_HEAP_BYTES) {
    const error = `does not fit wasm's 4 GiB heap (minimum ${(minimumBytes / 2 ** 30).toFixed(2)} GiB; a step's peak on wasm is about ${WASM_PEAK_OVER_MINIMUM}× that): measure it on a GPU backend`;
    emit(figure(name, NaN, "bytes", { ...shape, error }, minimumBytes));
    step.dispose();
    return;
  }
  const started = performance.now();
  let profile: Awaited<ReturnType<typeof tf.profile>>;
  try {
    profile = await tf.profile(() => step.run());
  } catch (error) {
    emit(figure(name, NaN, "bytes", { ...shape, error: (error as Error).message }, minimumBytes));
    step.dispose();
    return;
  }
  const seconds = (performance.now() - started) / 1000;
  // The "ceiling" here is a floor: ratio = peak ÷ the theoretical minimum (1 is the best possible).
  const parts = {
    parameters_gradients_moments: stateBytes,
    activations: activationBytes,
    logits: logitBytes,
  };
  emit(figure(name, profile.peakBytes, "bytes", { ...shape, seconds, minimum_parts: parts }, minimumBytes));
  step.dispose();
}
