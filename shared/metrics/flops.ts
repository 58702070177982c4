// Model FLOPs of training, the numerator of MFU (model FLOPs utilisation), counted as PaLM's appendix B
// does: per token, 6·P for the dense layers (2 forward, 4 backward, P parameters) plus 12·L·d·T for the
// attention scores and their weighted sum (L layers, width d, T the sequence length). Padding, the
// softmax, layer norms and recomputation are not model FLOPs, so MFU stays comparable across systems.
import { parameterShapes } from "../model/gpt.js";
import type { GptConfig } from "../model/config.js";

export function parameterCount(config: GptConfig): number {
  let count = 0;
  for (const shape of parameterShapes(config).values()) count += shape.reduce((a, b) => a * b, 1);
  return count;
}

/** FLOPs of one training step over `tokens` real tokens in sequences of mean length `sequenceLength`. */
export function trainingFlops(
  config: GptConfig,
  parameters: number,
  tokens: number,
  sequenceLength: number,
): number {
  return 6 * parameters * tokens + 12 * config.layers * config.embedDim * sequenceLength * tokens;
}
