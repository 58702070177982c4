// Templates turn a conversation into typed text spans. Loss weights are assigned from the span kinds,
// never by searching token ids for marker strings, so a marker that also occurs inside content is harmless.
import type { Conversation, Turn } from "./conversation.js";

/**
 * What a span is, which decides its loss weight (see encode.ts):
 * - `template`: role markers and fixed template text;
 * - `prompt`: system, user and input content (and, with last-turn-only, earlier assistant turns);
 * - `output`: assistant content trained as output, with the end token that closes it.
 */
export type SpanKind = "template" | "prompt" | "output";

export interface Span {
  readonly kind: SpanKind;
  /** The text; ignored when `eos` is set. */
  readonly text: string;
  /** The span is the tokenizer's end-of-sequence id, not text (so no text can spell it). */
  readonly eos?: true;
}

export const TEMPLATE_NAMES = ["tulu", "alpaca", "plain"] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];

export interface RenderOptions {
  /** Only the final assistant turn is output; earlier ones become prompt (context). */
  readonly lastTurnOnly: boolean;
}

const marker = (text: string): Span => ({ kind: "template", text });
const prompt = (text: string): Span => ({ kind: "prompt", text });
/** The assistant turn's content and end token: output, or (when not trained) context. */
function reply(turn: Turn, isOutput: boolean): Span[] {
  return isOutput
    ? [
        { kind: "output", text: turn.content },
        { kind: "output", text: "", eos: true },
      ]
    : [prompt(turn.content), { kind: "template", text: "", eos: true }];
}

/** User content, with the optional input after it; `between` separates them (template text). */
function instruction(turn: Turn, between: string): Span[] {
  return turn.input ? [prompt(turn.content), marker(between), prompt(turn.input)] : [prompt(turn.content)];
}

type TurnRenderer = (turn: Turn, isOutput: boolean, isFirst: boolean) => Span[];

// The paper's template (open-instruct / Tulu): <|user|>\n{prompt}\n<|assistant|>\n{output}</s>
const tulu: TurnRenderer = (turn, isOutput, isFirst) => {
  const lead = isFirst ? "" : "\n";
  switch (turn.role) {
    case "system":
      return [marker(`${lead}<|system|>\n`), prompt(turn.content)];
    case "user":
      return [marker(`${lead}<|user|>\n`), ...instruction(turn, "\n")];
    case "assistant":
      return [marker("\n<|assistant|>\n"), ...reply(turn, isOutput)];
  }
};

// Stanford Alpaca's prompt, with "### Input:" only when there is an input.
const ALPACA_HEADER =
  "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n";
const alpaca: TurnRenderer = (turn, isOutput, isFirst) => {
  switch (turn.role) {
    case "system":
      return [prompt(turn.content), marker("\n\n")];
    case "user":
      return [
        marker(`${isFirst ? ALPACA_HEADER : "\n\n"}### Instruction:\n`),
        ...instruction(turn, "\n\n### Input:\n"),
      ];
    case "assistant":
      return [marker("\n\n### Response:\n"), ...reply(turn, isOutput)];
  }
};

// No markers: content separated by newlines, which are template text.
const plain: TurnRenderer = (turn, isOutput, isFirst) => {
  if (turn.role === "assistant") return [marker("\n"), ...reply(turn, isOutput)];
  return [...(isFirst ? [] : [marker("\n")]), ...instruction(turn, "\n")];
};

const RENDERERS: Record<TemplateName, TurnRenderer> = { tulu, alpaca, plain };

/** Renders a conversation into spans; every assistant turn is output unless `lastTurnOnly`. */
export function renderConversation(
  conversation: Conversation,
  template: TemplateName,
  options: RenderOptions,
): Span[] {
  const render = RENDERERS[template];
  const last = conversation.turns.length - 1;
  return conversation.turns.flatMap((turn, i) =>
    render(turn, turn.role === "assistant" && (!options.lastTurnOnly || i === last), i === 0),
  );
}

/** The spans a model is given to complete the final assistant turn: everything before its content. */
export function renderPrompt(conversation: Conversation, template: TemplateName): Span[] {
  const turns = [...conversation.turns];
  if (turns.at(-1)?.role !== "assistant") turns.push({ role: "assistant", content: "" });
  const spans = renderConversation({ ...conversation, turns }, template, { lastTurnOnly: true });
  return spans.slice(0, -2); // drop the final reply and its end token
}
