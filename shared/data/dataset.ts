// A data file, parsed, rendered through a template and tokenized: what training, eval, scoring and
// analysis all start from.
import { UserError, type SourceRef } from "../errors.js";
import type { Conversation } from "./conversation.js";
import { tokenizeSpans, type LossWeighting, type TokenizedExample, type Truncation } from "./encode.js";
import type { DataFormat } from "./formats.js";
import { renderConversation, type TemplateName } from "./template.js";
import type { Tokenizer } from "./tokenizer.js";

export interface EncodingOptions {
  readonly format: DataFormat | "auto";
  readonly template: TemplateName;
  readonly weighting: LossWeighting;
  /** Only the final assistant turn of a multi-turn conversation is output. */
  readonly lastTurnOnly: boolean;
  /** Longest sequence in tokens; longer examples are cut as `truncation` says. */
  readonly contextLength: number;
  readonly truncation: Truncation;
}

export interface Example extends TokenizedExample {
  /** Position of the conversation in the file's order (self-instruct instances count separately). */
  readonly index: number;
  readonly source: SourceRef;
}

export interface Dataset {
  readonly file: string;
  readonly examples: readonly Example[];
  readonly conversations: number;
  /** Examples cut at the context length (still trained on, if any output token survived). */
  readonly truncated: number;
  /** Examples with no output token left after truncation: never trained on. */
  readonly dropped: readonly SourceRef[];
}

export function encodeConversations(
  file: string,
  conversations: readonly Conversation[],
  tokenizer: Tokenizer,
  options: EncodingOptions,
): Dataset {
  const examples: Example[] = [];
  const dropped: SourceRef[] = [];
  let truncated = 0;
  conversations.forEach((conversation, index) => {
    const spans = renderConversation(conversation, options.template, options);
    const tokens = tokenizeSpans(
      spans,
      tokenizer,
      options.weighting,
      options.contextLength,
      options.truncation,
    );
    if (tokens === null) {
      dropped.push(conversation.source);
      return;
    }
    if (tokens.truncatedTokens > 0) truncated++;
    examples.push({ ...tokens, index, source: conversation.source });
  });
  if (examples.length === 0) {
    throw new UserError(
      `${file}: all ${conversations.length} examples were dropped: no output token fits in ` +
        `--context-length ${options.contextLength}; raise it or shorten the prompts`,
    );
  }
  return { file, examples, conversations: conversations.length, truncated, dropped };
}
