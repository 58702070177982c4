// npm run bench's peak_memory figure: tfjs's own peak of live tensor bytes over one optimizer step of a
// preset (forward, masked loss, backward, AdamW), next to a theoretical minimum for the same step:
//   parameters, gradients and Adam's two moments: 16 bytes per parameter (float32);
//   activations kept for the backward pass, per layer s·b·h·(68 + 10·a·s/h) bytes (Korthikanti et al.,
//   "Reducing Activation Recomputation in Large Transformer Models", 34 + 5as/h bytes in half precision,
//   doubled for float32; s sequence, b batch, h width, a heads), plus the logits and their softmax
//   (2 · b·s·V · 4 bytes).
import * as tf from "@tensorflow/tfjs-core";
import { presetConfig } from "../shared/model/config.js";
import { Gpt, initialValues } from "../shared/model/gpt.js";
import { AdamW } from "../shared/train/adamw.js";
import { makeMicroBatch } from "../shared/train/batch.js";
import { accumulateGradients } from "../shared/train/gradients.js";
import { StepBufferLayout } from "../shared/train/step-buffer.js";
import type { Example } from "../shared/data/dataset.js";
import { mulberry32 } from "../shared/random.js";

function randomExamples(count: number, length: number, vocab: number): Example[] {
  const random = mulberry32(11);
  return Array.from({ length: count }, (_, index) => ({
    ids: Int32Array.from({ length }, () => Math.floor(random() * vocab)),
    weights: new Float32Array(length).fill(1),
    kinds: new Uint8Array(length).fill(2),
    truncatedTokens: 0,
    index,
    source: { file: "bench", line: index + 1 },
  }));
}

export async function benchPeakMemory(
  emit: (record: Record<string, unknown>) => void,
  backend: string,
  preset: string,
  batchSize: number,
  seq: number,
  vocab: number,
): Promise<void> {
  const config = presetConfig(preset, vocab);
  const model = new Gpt(config, initialValues(config, 1));
  const optimizer = new AdamW(model.params, {
    beta1: 0.9,
    beta2: 0.999,
    adamEpsilon: 1e-8,
    weightDecay: 0.01,
  });
  const layout = new StepBufferLayout(new Map([...model.params].map(([name, p]) => [name, p.shape])));
  const batch = makeMicroBatch(randomExamples(batchSize, seq + 1, vocab), 0);
  const options = { lossReduction: "token" as const, klWeight: 0, neftuneAlpha: 0, seed: 0 };
  const params = layout.gradientSize;
  const started = performance.now();
  let profile: Awaited<ReturnType<typeof tf.profile>>;
  try {
    profile = await tf.profile(async () => {
      const buffer = await accumulateGradients(model, undefined, [batch], layout, options, 0);
      optimizer.apply(layout, layout.gradients(buffer), 1e-4);
    });
  } catch (error) {
    // wasm's heap is 32-bit (at most 4 GiB): GPT-2 small's step does not fit, and tfjs fails obscurely.
    const heap = backend === "wasm" ? " (wasm's heap is at most 4 GiB)" : "";
    emit({
      bench: "peak_memory",
      backend,
      model: preset,
      params,
      batch: batchSize,
      seq,
      vocab,
      error: `${(error as Error).message}${heap}`,
    });
    return;
  }
  const seconds = (performance.now() - started) / 1000;
  const { embedDim: h, heads: a, layers } = config;
  const stateBytes = 16 * params;
  const activationBytes = layers * seq * batchSize * h * (68 + (10 * a * seq) / h);
  const logitBytes = 2 * batchSize * seq * vocab * 4;
  emit({
    bench: "peak_memory",
    backend,
    model: preset,
    params,
    batch: batchSize,
    seq,
    vocab,
    seconds,
    peak_bytes: profile.peakBytes,
    minimum_bytes: stateBytes + activationBytes + logitBytes,
    minimum_parts: {
      parameters_gradients_moments: stateBytes,
      activations: activationBytes,
      logits: logitBytes,
    },
    peak_over_minimum: profile.peakBytes / (stateBytes + activationBytes + logitBytes),
  });
  model.dispose();
}
