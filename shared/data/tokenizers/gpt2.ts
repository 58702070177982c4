// GPT-2's byte-level BPE (50,257 ids) via js-tiktoken, with the ranks loaded only when asked for.
import type { Tiktoken } from "js-tiktoken/lite";
import { decodeKnownRuns, type Tokenizer } from "../tokenizer.js";

const EOS_ID = 50256;
const EOS_TOKEN = "<|endoftext|>";
const VOCAB_SIZE = 50257;
const EXCLAMATION_ID = 0;

// The ranks are ~1 MB of base64 to parse: share one instance across every load in the process.
let shared: Promise<Tiktoken> | undefined;

function loadEncoding(): Promise<Tiktoken> {
  shared ??= (async () => {
    const [{ Tiktoken: TiktokenClass }, ranks] = await Promise.all([
      import("js-tiktoken/lite"),
      import("js-tiktoken/ranks/gpt2"),
    ]);
    return new TiktokenClass(ranks.default);
  })();
  return shared;
}

export class Gpt2Tokenizer implements Tokenizer {
  readonly name = "gpt2";
  readonly vocabSize = VOCAB_SIZE;
  readonly eosId = EOS_ID;
  readonly eosToken = EOS_TOKEN;

  private constructor(private readonly encoding: Tiktoken) {}

  static async load(): Promise<Gpt2Tokenizer> {
    return new Gpt2Tokenizer(await loadEncoding());
  }

  encode(text: string): number[] {
    // js-tiktoken's defaults (allowed [], disallowed "all") throw on text that spells <|endoftext|>;
    // with both empty, such text is split and encoded as ordinary bytes like any other.
    return this.encoding.encode(text, [], []);
  }

  decode(ids: readonly number[]): string {
    // js-tiktoken silently drops ids it does not know; render them as U+FFFD so they stay visible.
    // Its TextDecoder strips a leading U+FEFF; a one-byte "!" (id 0) in front keeps it, then goes.
    return decodeKnownRuns(
      ids,
      (id) => id >= 0 && id < VOCAB_SIZE,
      (run) => this.encoding.decode([EXCLAMATION_ID, ...run]).slice(1),
    );
  }
}
