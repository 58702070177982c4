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

/**
 * Decodes `ids`, rendering each id that `isKnown` rejects as U+FFFD (libraries crash on, or silently drop,
 * unknown ids) and handing each run of known ids to `decodeRun`.
 */
export function decodeKnownRuns(
  ids: readonly number[],
  isKnown: (id: number) => boolean,
  decodeRun: (run: number[]) => string,
): string {
  let out = "";
  let run: number[] = [];
  for (const id of ids) {
    if (Number.isInteger(id) && isKnown(id)) {
      run.push(id);
      continue;
    }
    if (run.length > 0) out += decodeRun(run);
    run = [];
    out += "\uFFFD";
  }
  return run.length > 0 ? out + decodeRun(run) : out;
}
