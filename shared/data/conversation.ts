// The one in-memory shape every data format is parsed into, before templates and tokenizers see it.
import type { SourceRef } from "../errors.js";

export type Role = "system" | "user" | "assistant";

export interface Turn {
  readonly role: Role;
  /** The turn's text: the instruction for a user turn, the response for an assistant turn. */
  readonly content: string;
  /** Extra context for a user turn (Alpaca `input`, Dolly `context`); templates place it after the instruction. */
  readonly input?: string;
}

/** One training example: turns in order, ending with an assistant turn. */
export interface Conversation {
  readonly turns: readonly Turn[];
  readonly source: SourceRef;
}
