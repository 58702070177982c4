// What both training-step figures (train_step, peak_memory) run: a fresh preset model with AdamW, one
// micro-batch of random tokens, and one optimizer step over it.
import { MODEL_PRESETS, presetConfig, type GptConfig } from "../shared/model/config.js";
import { OptionError } from "../shared/errors.js";
import { Gpt, initialValues } from "../shared/model/gpt.js";
import { AdamW } from "../shared/train/adamw.js";
import { makeMicroBatch } from "../shared/train/batch.js";
import { accumulateGradients } from "../shared/train/gradients.js";
import { StepBufferLayout } from "../shared/train/step-buffer.js";
import type { Example } from "../shared/data/dataset.js";
import { mulberry32 } from "../shared/random.js";

function randomExamples(count: number, length: number, vocab: number): Example[] {
  const random = mulberry32(7);
  return Array.from({ length: count }, (_, index) => {
    const ids = Int32Array.from({ length }, () => Math.floor(random() * vocab));
    const weights = new Float32Array(length).fill(1);
    weights[0] = 0;
    return {
      ids,
      weights,
      kinds: new Uint8Array(length).fill(2),
      truncatedTokens: 0,
      truncatedOutputTokens: 0,
      index,
      source: { file: "bench", line: index + 1 },
    };
  });
}

export interface BenchStep {
  readonly config: GptConfig;
  /** Parameters trained. */
  readonly params: number;
  /** One forward, masked loss, backward and AdamW update. */
  run(): Promise<void>;
  dispose(): void;
}

/** Bench-only shapes beside the presets: d128 is the d128 L2 H4 model the README's comparisons use. */
const BENCH_SHAPES: Record<string, Omit<GptConfig, "vocabSize" | "layerNormEps">> = {
  d128: { maxPositions: 1024, embedDim: 128, layers: 2, heads: 4 },
};

/** A preset or bench shape with a `vocab`-token vocabulary. */
export function benchModelConfig(model: string, vocab: number): GptConfig {
  const shape = BENCH_SHAPES[model];
  if (shape !== undefined) return { ...shape, vocabSize: vocab, layerNormEps: 1e-5 };
  if (MODEL_PRESETS[model] === undefined)
    throw new OptionError(
      "models",
      `"${model}" is not ${[...Object.keys(MODEL_PRESETS), ...Object.keys(BENCH_SHAPES)].join(", ")}`,
    );
  return presetConfig(model, vocab);
}

/** A model of `config`, trained on `batchSize` random sequences of `seq` tokens. */
export function benchStep(config: GptConfig, batchSize: number, seq: number): BenchStep {
  const vocab = config.vocabSize;
  const model = new Gpt(config, initialValues(config, 1));
  const optimizer = new AdamW(model.params, {
    beta1: 0.9,
    beta2: 0.999,
    adamEpsilon: 1e-8,
    weightDecay: 0.01,
  });
  const layout = new StepBufferLayout(new Map([...model.params].map(([name, p]) => [name, p.shape])));
  const batch = makeMicroBatch(randomExamples(batchSize, seq + 1, vocab), vocab - 1);
  const options = { lossReduction: "token" as const, klWeight: 0, neftuneAlpha: 0, seed: 0 };
  return {
    config,
    params: layout.gradientSize,
    run: async () => {
      const buffer = await accumulateGradients(model, undefined, [batch], layout, options, 0);
      optimizer.apply(layout, layout.gradients(buffer), 1e-4);
    },
    dispose: () => model.dispose(),
  };
}
