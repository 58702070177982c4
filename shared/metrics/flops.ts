// Model FLOPs of training, the numerator of MFU (model FLOPs utilisation), counted as PaLM's appendix B
// does: per token, 6·P for the matmuls (2 forward, 4 backward) plus 12·L·d·T for the attention scores and
// their weighted sum (L layers, width d, T the sequence length). P counts the parameters that take part
// in a matmul: all but the position-embedding table, a lookup (the token embedding counts: it is also the
// output projection), as nanoGPT counts them. Padding, the softmax, layer norms and recomputation are not
// model FLOPs, so MFU stays comparable across systems.
import { parameterShapes } from "../model/gpt.js";
import type { GptConfig } from "../model/config.js";

export function parameterCount(config: GptConfig): number {
  let count = 0;
  for (const shape of parameterShapes(config).values()) count += shape.reduce((a, b) => a * b, 1);
  return count;
}

/** Parameters that take part in a matmul: all but the position embeddings. */
export function matmulParameterCount(config: GptConfig): number {
  return parameterCount(config) - config.maxPositions * config.embedDim;
}

/** FLOPs of one training step over `tokens` real tokens in sequences of mean length `sequenceLength`. */
export function trainingFlops(
  config: GptConfig,
  /** matmulParameterCount(config) */
  parameters: number,
  tokens: number,
  sequenceLength: number,
): number {
  return 6 * parameters * tokens + 12 * config.layers * config.embedDim * sequenceLength * tokens;
}
