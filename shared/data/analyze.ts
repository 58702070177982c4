// Length statistics of an encoded data set: the instruction/output length ratio is the paper's key
// factor for whether loss on instructions helps (long instructions, short outputs → IM wins).
import type { Dataset } from "./dataset.js";
import { OUTPUT_KIND } from "./encode.js";

export interface LengthStats {
  readonly mean: number;
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface DataAnalysis {
  readonly file: string;
  readonly examples: number;
  readonly conversations: number;
  readonly truncated: number;
  readonly dropped: number;
  /** Tokens cut from the kept examples' prompts (and template), and from their outputs. */
  readonly truncated_prompt_tokens: number;
  readonly truncated_output_tokens: number;
  /** Tokens that are not output: instruction, input, system, template. */
  readonly prompt_tokens: LengthStats;
  readonly output_tokens: LengthStats;
  /** mean prompt tokens / mean output tokens. */
  readonly instruction_output_ratio: number;
  readonly total_tokens: number;
}

export function lengthStats(values: readonly number[]): LengthStats {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mid = Math.floor(n / 2);
  const median = n === 0 ? 0 : n % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return {
    mean: n === 0 ? 0 : sorted.reduce((a, b) => a + b, 0) / n,
    median,
    min: sorted[0] ?? 0,
    max: sorted[n - 1] ?? 0,
  };
}

export function analyzeDataset(dataset: Dataset): DataAnalysis {
  const promptLengths: number[] = [];
  const outputLengths: number[] = [];
  for (const example of dataset.examples) {
    const output = example.kinds.reduce((count, kind) => count + (kind === OUTPUT_KIND ? 1 : 0), 0);
    outputLengths.push(output);
    promptLengths.push(example.ids.length - output);
  }
  const prompt = lengthStats(promptLengths);
  const output = lengthStats(outputLengths);
  return {
    file: dataset.file,
    examples: dataset.examples.length,
    conversations: dataset.conversations,
    truncated: dataset.truncated,
    dropped: dataset.dropped.length,
    truncated_prompt_tokens: dataset.examples.reduce(
      (sum, e) => sum + e.truncatedTokens - e.truncatedOutputTokens,
      0,
    ),
    truncated_output_tokens: dataset.examples.reduce((sum, e) => sum + e.truncatedOutputTokens, 0),
    prompt_tokens: prompt,
    output_tokens: output,
    instruction_output_ratio: prompt.mean / Math.max(1e-9, output.mean),
    total_tokens: dataset.examples.reduce((a, e) => a + e.ids.length, 0),
  };
}
