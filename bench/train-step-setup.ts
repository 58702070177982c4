// What both training-step figures (train_step, peak_memory) run: a fresh preset model with AdamW, one
// micro-batch of random tokens, and one optimizer step over it.
import { presetConfig, type GptConfig } from "../shared/model/config.js";
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

/** `preset` with a `vocab`-token vocabulary, trained on `batchSize` random sequences of `seq` tokens. */
export function benchStep(preset: string, vocab: number, batchSize: number, seq: number): BenchStep {
  const config = presetConfig(preset, vocab);
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
