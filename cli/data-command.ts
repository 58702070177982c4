// Shared set-up of the commands that read data: flags → options → tokenizer → encoded data set.
import type { Dataset } from "../shared/data/dataset.js";
import { encodingOptions, loadDataTokenizer, loadEncoded } from "../shared/data/load.js";
import type { Tokenizer } from "../shared/data/tokenizer.js";
import { compileDataOptions, type DataFlags, type DataOptions } from "../shared/options.js";

/** Without a model, sequences are capped at this many tokens unless --context-length says otherwise. */
export const DEFAULT_DATA_CONTEXT = 2048;

export interface LoadedData {
  readonly options: DataOptions;
  readonly tokenizer: Tokenizer;
  readonly dataset: Dataset;
}

export async function loadDataForCommand(
  flags: DataFlags,
  maxPositions = DEFAULT_DATA_CONTEXT,
  tokenizer?: Tokenizer,
): Promise<LoadedData> {
  const options = compileDataOptions(flags);
  const chosen = tokenizer ?? (await loadDataTokenizer(options));
  const encoding = encodingOptions(
    options,
    options.contextLength === undefined ? maxPositions : Math.max(maxPositions, options.contextLength),
  );
  const dataset = loadEncoded(options.dataFile, options, chosen, encoding, (line) =>
    process.stderr.write(line + "\n"),
  );
  return { options, tokenizer: chosen, dataset };
}
