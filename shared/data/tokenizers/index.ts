// Turns the --tokenizer flag into a Tokenizer: a built-in name, or a path to a Hugging Face tokenizer.json.
import { stat } from "node:fs/promises";
import { OptionError } from "../../errors.js";
import type { Tokenizer } from "../tokenizer.js";
import { ByteTokenizer } from "./byte.js";
import { Gpt2Tokenizer } from "./gpt2.js";
import { HuggingFaceTokenizer } from "./huggingface.js";

export { ByteTokenizer } from "./byte.js";
export { Gpt2Tokenizer } from "./gpt2.js";
export { EOS_CANDIDATES, HuggingFaceTokenizer, type HuggingFaceTokenizerOptions } from "./huggingface.js";

export interface LoadTokenizerOptions {
  /** The end-of-sequence token's text (--eos-token); only a tokenizer.json can choose its own. */
  readonly eosToken?: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Built-ins have a fixed eos: an --eos-token that names another would be silently ignored, so refuse it. */
function checkBuiltinEos(tokenizer: ByteTokenizer | Gpt2Tokenizer, eosToken: string | undefined): Tokenizer {
  if (eosToken !== undefined && eosToken !== tokenizer.eosToken) {
    throw new OptionError(
      "eos-token",
      `the ${tokenizer.name} tokenizer's end-of-sequence token is ${tokenizer.eosToken}, not ${JSON.stringify(eosToken)}`,
    );
  }
  return tokenizer;
}

/** `spec` is "byte", "gpt2", or a path to a tokenizer.json or a directory holding one. */
export async function loadTokenizer(spec: string, options: LoadTokenizerOptions = {}): Promise<Tokenizer> {
  // Names win over same-named paths: a stray ./gpt2 directory should not change what "gpt2" means.
  if (spec === "byte") return checkBuiltinEos(new ByteTokenizer(), options.eosToken);
  if (spec === "gpt2") return checkBuiltinEos(await Gpt2Tokenizer.load(), options.eosToken);
  if (!(await exists(spec))) {
    // A spec that looks like a path was meant as one: say the file is missing, not that the name is unknown.
    const looksLikePath = /[/\\]/.test(spec) || spec.endsWith(".json");
    throw new OptionError(
      "tokenizer",
      looksLikePath
        ? `${spec}: no such file (give byte, gpt2, or a tokenizer.json or the directory holding it)`
        : `${JSON.stringify(spec)} is not byte, gpt2, or the path of a tokenizer.json (no such file)`,
    );
  }
  return HuggingFaceTokenizer.load(spec, options);
}
