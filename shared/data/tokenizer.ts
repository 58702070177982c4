// What templates and the model need of a tokenizer; implementations live in shared/data/tokenizers/.

export interface Tokenizer {
  /** Short name for logs and checkpoints: "byte", "gpt2", or "hf:<path>". */
  readonly name: string;
  /** Number of ids the model's embedding must hold (every id < vocabSize). */
  readonly vocabSize: number;
  /** The end-of-sequence id: the template's `</s>`, trained as part of the output. */
  readonly eosId: number;
  /** Ordinary text to ids; never produces special ids from text that spells them. */
  encode(text: string): number[];
  /** Ids back to text; special ids render as their names (e.g. `</s>`). */
  decode(ids: readonly number[]): string;
}
