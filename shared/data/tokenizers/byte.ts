// A tokenizer with no files to load: one id per UTF-8 byte plus `</s>`, for demos, tests and tiny models.
import type { Tokenizer } from "../tokenizer.js";

const EOS_ID = 256;
const EOS_TOKEN = "</s>";

/** Ids 0–255 are UTF-8 bytes, 256 is `</s>`. */
export class ByteTokenizer implements Tokenizer {
  readonly name = "byte";
  readonly vocabSize = 257;
  readonly eosId = EOS_ID;
  readonly eosToken = EOS_TOKEN;
  private readonly encoder = new TextEncoder();
  // fatal: false turns invalid UTF-8 (e.g. a sample cut mid-character) into U+FFFD instead of throwing;
  // ignoreBOM keeps a leading U+FEFF so decode(encode(s)) === s.
  private readonly decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

  encode(text: string): number[] {
    // The text `</s>` is just its four bytes: only the template emits id 256.
    return Array.from(this.encoder.encode(text));
  }

  decode(ids: readonly number[]): string {
    let out = "";
    let bytes: number[] = [];
    const flush = (): void => {
      if (bytes.length > 0) out += this.decoder.decode(Uint8Array.from(bytes));
      bytes = [];
    };
    for (const id of ids) {
      if (Number.isInteger(id) && id >= 0 && id < 256) {
        bytes.push(id);
        continue;
      }
      flush();
      // Ids a model should never produce still decode, as a visible replacement character.
      out += id === EOS_ID ? EOS_TOKEN : "\uFFFD";
    }
    flush();
    return out;
  }
}
