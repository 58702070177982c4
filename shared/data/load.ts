// Data flags → tokenizer and encoded datasets (train and, when asked, eval).
import { OptionError } from "../errors.js";
import type { DataOptions } from "../options.js";
import { encodeConversations, type Dataset, type EncodingOptions } from "./dataset.js";
import { readDataFile } from "./formats.js";
import type { Tokenizer } from "./tokenizer.js";
import { loadTokenizer } from "./tokenizers/index.js";

export type Log = (line: string) => void;

export function encodingOptions(data: DataOptions, maxPositions: number): EncodingOptions {
  const contextLength = data.contextLength ?? maxPositions;
  if (contextLength > maxPositions) {
    throw new OptionError("context-length", `${contextLength} exceeds the model's ${maxPositions} positions`);
  }
  return { ...data, contextLength };
}

export async function loadDataTokenizer(data: DataOptions): Promise<Tokenizer> {
  return loadTokenizer(data.tokenizer, data.eosToken === undefined ? {} : { eosToken: data.eosToken });
}

/** Loads and encodes one data file, reporting what was dropped or cut. */
export function loadEncoded(
  file: string,
  data: DataOptions,
  tokenizer: Tokenizer,
  encoding: EncodingOptions,
  log: Log,
): Dataset {
  let emptyOutputs = 0;
  const conversations = readDataFile(
    file,
    encoding.format,
    data.dropEmptyOutputs ? { onEmptyOutput: () => emptyOutputs++ } : {},
  );
  const dataset = encodeConversations(file, conversations, tokenizer, encoding);
  const notes = [
    emptyOutputs > 0 ? `${emptyOutputs} records with empty output skipped` : "",
    dataset.truncated > 0 ? `${dataset.truncated} truncated to ${encoding.contextLength} tokens` : "",
    dataset.dropped.length > 0
      ? `${dataset.dropped.length} dropped (no output token left after truncation)`
      : "",
  ].filter(Boolean);
  log(`data ${file}: ${dataset.examples.length} examples${notes.length ? ` (${notes.join("; ")})` : ""}`);
  return dataset;
}
