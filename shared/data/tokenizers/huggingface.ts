// A Hugging Face tokenizer.json (plus an optional tokenizer_config.json) from local disk, via the pure-JS
// @huggingface/tokenizers, so any model's own vocabulary can be used without Python.
import type { Stats } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Tokenizer as UntypedHfTokenizer } from "@huggingface/tokenizers";
import { OptionError, UserError } from "../../errors.js";
import { decodeKnownRuns, type Tokenizer } from "../tokenizer.js";

// The package's .d.ts files use extensionless relative imports, which NodeNext cannot resolve, so everything
// it exports arrives as `any`. These are the parts we use, typed from its source (tokenizers.mjs 0.2.0).
interface HfTokenizer {
  /** An id is undefined for a piece missing from a vocab that has no unk_token. */
  encode(
    text: string,
    options: { add_special_tokens: boolean },
  ): { ids: (number | undefined)[]; tokens: string[] };
  /** Throws on an empty array. */
  decode(ids: number[], options: { clean_up_tokenization_spaces: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
}
const HfTokenizerClass: new (tokenizerJson: object, config: object) => HfTokenizer = UntypedHfTokenizer;

/** Tried in order when neither --eos-token nor tokenizer_config.json names the end-of-sequence token. */
export const EOS_CANDIDATES: readonly string[] = [
  "</s>",
  "<|endoftext|>",
  "<|end_of_text|>",
  "<eos>",
  "<|im_end|>",
];

export interface HuggingFaceTokenizerOptions {
  /** The end-of-sequence token's text; overrides tokenizer_config.json and the built-in candidates. */
  readonly eosToken?: string;
}

type JsonObject = Record<string, unknown>;

interface AddedTokenJson {
  readonly id: number;
  readonly content: string;
  readonly special: boolean;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function readJsonObject(path: string): Promise<JsonObject> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new UserError(`${path}: cannot read: ${message(err)}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${path}: invalid JSON: ${message(err)}`, { cause: err });
  }
  if (!isObject(value)) throw new UserError(`${path}: expected a JSON object`);
  return value;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** The tokenizer.json to read for `path`, which is that file itself or a directory holding it. */
async function locateTokenizerJson(path: string): Promise<string> {
  let info: Stats;
  try {
    info = await stat(path);
  } catch (err) {
    throw new UserError(`${path}: no such file or directory`, { cause: err });
  }
  if (!info.isDirectory()) return path;
  const file = join(path, "tokenizer.json");
  if (!(await isFile(file))) throw new UserError(`${path}: directory has no tokenizer.json`);
  return file;
}

function parseAddedTokens(raw: readonly unknown[], file: string): AddedTokenJson[] {
  return raw.map((entry, i) => {
    const id = isObject(entry) ? entry["id"] : undefined;
    const content = isObject(entry) ? entry["content"] : undefined;
    if (typeof id !== "number" || !Number.isInteger(id) || typeof content !== "string") {
      throw new UserError(`${file}: added_tokens[${i}] needs an integer id and a string content`);
    }
    return { id, content, special: isObject(entry) && entry["special"] === true };
  });
}

/** The largest id in a model vocab: `{token: id}` (BPE, WordPiece), `[[token, score]]` (Unigram), or nested. */
function maxVocabId(vocab: unknown): number {
  if (Array.isArray(vocab)) return vocab.length - 1;
  let max = -1;
  if (isObject(vocab)) {
    for (const value of Object.values(vocab)) {
      max = Math.max(max, typeof value === "number" ? value : maxVocabId(value));
    }
  }
  return max;
}

/** `eos_token` in tokenizer_config.json is either the text or a serialized AddedToken `{content: ...}`. */
function configEosToken(config: JsonObject | undefined): string | undefined {
  const eos = config?.["eos_token"];
  if (typeof eos === "string") return eos;
  if (isObject(eos) && typeof eos["content"] === "string") return eos["content"];
  return undefined;
}

export class HuggingFaceTokenizer implements Tokenizer {
  private constructor(
    readonly name: string,
    readonly vocabSize: number,
    readonly eosId: number,
    readonly eosToken: string,
    /** Knows every added token, so special ids decode to their names. */
    private readonly full: HfTokenizer,
    /** The same tokenizer without its special added tokens, so text that spells them stays text. */
    private readonly textOnly: HfTokenizer,
  ) {}

  /** Loads `path`: a tokenizer.json, or a directory containing one (and maybe tokenizer_config.json). */
  static async load(path: string, options: HuggingFaceTokenizerOptions = {}): Promise<HuggingFaceTokenizer> {
    const file = await locateTokenizerJson(path);
    const json = await readJsonObject(file);
    const model = json["model"];
    if (!isObject(model)) throw new UserError(`${file}: not a tokenizer.json (no "model" object)`);
    const addedJson = json["added_tokens"] ?? [];
    if (!Array.isArray(addedJson)) throw new UserError(`${file}: added_tokens must be an array`);
    const rawAdded: readonly unknown[] = addedJson;
    const added = parseAddedTokens(rawAdded, file);
    const configPath = join(dirname(file), "tokenizer_config.json");
    const config = (await isFile(configPath)) ? await readJsonObject(configPath) : undefined;

    // The library insists these keys exist even when null; older or hand-written files may omit them.
    const complete: JsonObject = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...json,
      added_tokens: rawAdded,
    };
    const build = (tokenizerJson: JsonObject): HfTokenizer => {
      try {
        return new HfTokenizerClass(tokenizerJson, config ?? {});
      } catch (err) {
        throw new UserError(`${file}: unsupported tokenizer.json: ${message(err)}`, { cause: err });
      }
    };
    const full = build(complete);

    const lookup = (token: string): number | undefined => full.token_to_id(token);
    let eosToken: string;
    if (options.eosToken !== undefined) {
      if (lookup(options.eosToken) === undefined) {
        throw new OptionError("eos-token", `${JSON.stringify(options.eosToken)} is not a token in ${file}`);
      }
      eosToken = options.eosToken;
    } else {
      const fromConfig = configEosToken(config);
      if (fromConfig !== undefined && lookup(fromConfig) === undefined) {
        throw new UserError(
          `${configPath}: eos_token ${JSON.stringify(fromConfig)} is not a token in ${file}; pass --eos-token`,
        );
      }
      const found = fromConfig ?? EOS_CANDIDATES.find((token) => lookup(token) !== undefined);
      if (found === undefined) {
        throw new UserError(
          `${file}: cannot tell the end-of-sequence token (none of ${EOS_CANDIDATES.join(", ")}); pass --eos-token`,
        );
      }
      eosToken = found;
    }
    const eosId = lookup(eosToken);
    if (eosId === undefined) throw new Error(`eos token ${eosToken} vanished from ${file}`);

    const specials = new Set(added.filter((t) => t.special || t.content === eosToken).map((t) => t.content));
    const textOnly = build({
      ...complete,
      added_tokens: rawAdded.filter((_, i) => !specials.has(added[i]?.content ?? "")),
    });

    const vocabSize = 1 + added.reduce((max, t) => Math.max(max, t.id), maxVocabId(model["vocab"]));
    return new HuggingFaceTokenizer(`hf:${path}`, vocabSize, eosId, eosToken, full, textOnly);
  }

  encode(text: string): number[] {
    if (text.length === 0) return [];
    // No BOS/EOS: the template decides where special tokens go.
    const { ids, tokens } = this.textOnly.encode(text, { add_special_tokens: false });
    return ids.map((id, i) => {
      if (id !== undefined) return id;
      throw new UserError(
        `${this.name}: cannot encode ${JSON.stringify(tokens[i])}: not in the vocabulary and no unk_token`,
      );
    });
  }

  decode(ids: readonly number[]): string {
    // Ids outside the vocabulary decode to U+FFFD; the library would crash on or silently drop them.
    // clean_up_tokenization_spaces (on by default) rewrites " ." to "." and similar: not a round trip.
    return decodeKnownRuns(
      ids,
      (id) => this.full.id_to_token(id) !== undefined,
      (run) => this.full.decode(run, { clean_up_tokenization_spaces: false }),
    );
  }
}
