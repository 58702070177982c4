// Completions from a trained model: greedy (temperature 0) or sampled, until the end token.
import * as tf from "@tensorflow/tfjs-core";
import { mulberry32 } from "../random.js";
import type { Gpt } from "./gpt.js";

export interface GenerateOptions {
  readonly maxNewTokens: number;
  /** 0 = greedy. */
  readonly temperature: number;
  /** Sample among the k most likely tokens; 0 = all. */
  readonly topK: number;
  readonly seed: number;
  readonly eosId: number;
}

function pick(logits: Float32Array, options: GenerateOptions, random: () => number): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++)
    if ((logits[i] ?? -Infinity) > (logits[best] ?? -Infinity)) best = i;
  if (options.temperature === 0) return best;
  let candidates = [...logits.keys()];
  if (options.topK > 0)
    candidates = candidates.sort((a, b) => (logits[b] ?? 0) - (logits[a] ?? 0)).slice(0, options.topK);
  const top = logits[best] ?? 0;
  const weights = candidates.map((i) => Math.exp(((logits[i] ?? 0) - top) / options.temperature));
  let r = random() * weights.reduce((a, b) => a + b, 0);
  for (let j = 0; j < candidates.length; j++) {
    r -= weights[j] ?? 0;
    if (r <= 0) return candidates[j] ?? best;
  }
  return best;
}

/** Returns the generated ids (without the prompt; the end token excluded). */
export function generate(model: Gpt, prompt: readonly number[], options: GenerateOptions): number[] {
  const random = mulberry32(options.seed);
  const ids = [...prompt];
  const generated: number[] = [];
  const window = model.config.maxPositions;
  for (let n = 0; n < options.maxNewTokens; n++) {
    const context = ids.slice(-window);
    const last = tf.tidy(() => {
      const logits = model.forward(tf.tensor2d(context, [1, context.length], "int32")); // [T, V]
      return tf.slice(logits, [context.length - 1, 0], [1, -1]);
    });
    const next = pick(last.dataSync() as Float32Array, options, random);
    last.dispose();
    if (next === options.eosId) break;
    ids.push(next);
    generated.push(next);
  }
  return generated;
}
