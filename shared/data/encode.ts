// Spans → token ids and per-token loss weights. The one loss-weight convention of the project:
//   weights[i] weighs the loss of predicting ids[i] from ids[0..i-1]; weights[0] is always 0.
// Weights come from the span a token belongs to: output (and its end token) → 1, prompt → λ,
// template → the template weight. λ = 0 is instruction tuning (IT), λ = 1 instruction modelling (IM).
import type { Span, SpanKind } from "./template.js";
import type { Tokenizer } from "./tokenizer.js";

export interface LossWeighting {
  /** λ: weight on instruction/input/system/user tokens. */
  readonly promptLossWeight: number;
  /** Weight on template and role-marker tokens (the paper's IM uses 0). */
  readonly templateLossWeight: number;
}

/** Span kinds by code, the order of `TokenizedExample.kinds` values. */
export const SPAN_KINDS: readonly SpanKind[] = ["template", "prompt", "output"];
export const OUTPUT_KIND = SPAN_KINDS.indexOf("output");

export interface TokenizedExample {
  readonly ids: Int32Array;
  /** [L] weights[i] weighs predicting ids[i]. */
  readonly weights: Float32Array;
  /** [L] SPAN_KINDS index of the span each token came from; output tokens make the comparable output-only loss. */
  readonly kinds: Uint8Array;
  /** Tokens cut to fit the context length, of every kind. */
  readonly truncatedTokens: number;
  /** Of those, output tokens (the rest are prompt and template tokens). */
  readonly truncatedOutputTokens: number;
}

/**
 * How an example longer than the context is cut:
 *   prompt  (default) drop prompt tokens from the start of the prompt, keeping the output and the template
 *           whole: the part of an instruction next to its answer (the question after a long passage)
 *           stays, and the output the loss is compared on is never lost to a long instruction. If output
 *           and template alone exceed the context, the end is cut as well.
 *   end     keep the first tokens (open-instruct's cut): a long prompt takes the output with it.
 */
export const TRUNCATION_MODES = ["prompt", "end"] as const;
export type Truncation = (typeof TRUNCATION_MODES)[number];

export function spanWeight(kind: SpanKind, weighting: LossWeighting): number {
  if (kind === "output") return 1;
  return kind === "prompt" ? weighting.promptLossWeight : weighting.templateLossWeight;
}

const PROMPT_KIND = SPAN_KINDS.indexOf("prompt");

/** Indices of the tokens kept: the first `contextLength` after dropping the earliest prompt tokens if asked. */
function keptPositions(kinds: readonly number[], contextLength: number, truncation: Truncation): number[] {
  const positions = kinds.map((_, i) => i);
  if (kinds.length <= contextLength || truncation === "end") return positions.slice(0, contextLength);
  let excess = kinds.length - contextLength;
  const kept = positions.filter((i) => {
    if (excess > 0 && kinds[i] === PROMPT_KIND) {
      excess--;
      return false;
    }
    return true;
  });
  return kept.slice(0, contextLength);
}

/**
 * Tokenizes each span on its own and concatenates, cut to `contextLength` tokens as `truncation` says.
 * Returns null when no output token survives: such an example teaches nothing comparable and is dropped
 * by the caller, who counts it.
 */
export function tokenizeSpans(
  spans: readonly Span[],
  tokenizer: Tokenizer,
  weighting: LossWeighting,
  contextLength: number,
  truncation: Truncation = "prompt",
): TokenizedExample | null {
  const ids: number[] = [];
  const kinds: number[] = [];
  for (const span of spans) {
    const spanIds = span.eos ? [tokenizer.eosId] : tokenizer.encode(span.text);
    for (const id of spanIds) {
      ids.push(id);
      kinds.push(SPAN_KINDS.indexOf(span.kind));
    }
  }
  const kept = keptPositions(kinds, contextLength, truncation);
  const length = kept.length;
  const outputsIn = (positions: Iterable<number>) => {
    let count = 0;
    for (const i of positions) if (kinds[i] === OUTPUT_KIND) count++;
    return count;
  };
  const example: TokenizedExample = {
    ids: Int32Array.from(kept, (i) => ids[i] ?? 0),
    kinds: Uint8Array.from(kept, (i) => kinds[i] ?? 0),
    weights: new Float32Array(length),
    truncatedTokens: ids.length - length,
    truncatedOutputTokens: outputsIn(kinds.keys()) - outputsIn(kept),
  };
  let outputTokens = 0;
  // Position 0 has no context, so nothing predicts it.
  for (let i = 1; i < length; i++) {
    const kind = SPAN_KINDS[example.kinds[i] ?? 0] ?? "template";
    if (kind === "output") outputTokens++;
    example.weights[i] = spanWeight(kind, weighting);
  }
  return outputTokens > 0 ? example : null;
}
