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
  /** Tokens cut off at the context length. */
  readonly truncatedTokens: number;
}

export function spanWeight(kind: SpanKind, weighting: LossWeighting): number {
  if (kind === "output") return 1;
  return kind === "prompt" ? weighting.promptLossWeight : weighting.templateLossWeight;
}

/**
 * Tokenizes each span on its own and concatenates, keeping the first `contextLength` tokens
 * (truncation cuts the end, as open-instruct does). Returns null when no output token survives:
 * such an example teaches nothing comparable and is dropped by the caller, who counts it.
 */
export function tokenizeSpans(
  spans: readonly Span[],
  tokenizer: Tokenizer,
  weighting: LossWeighting,
  contextLength: number,
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
  const length = Math.min(ids.length, contextLength);
  const example: TokenizedExample = {
    ids: Int32Array.from(ids.slice(0, length)),
    kinds: Uint8Array.from(kinds.slice(0, length)),
    weights: new Float32Array(length),
    truncatedTokens: ids.length - length,
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
