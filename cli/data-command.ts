// Shared set-up of the commands that read data: flags → options → tokenizer → encoded data set.
import type { Dataset } from "../shared/data/dataset.js";
import { encodingOptions, loadDataTokenizer, loadEncoded } from "../shared/data/load.js";
import type { Tokenizer } from "../shared/data/tokenizer.js";
import { compileDataOptions, type DataFlags, type DataOptions } from "../shared/options.js";

export interface LoadedData {
  readonly options: DataOptions;
  readonly tokenizer: Tokenizer;
  readonly dataset: Dataset;
}

/** Reads and encodes --data cut to `maxPositions` (the model's) or a shorter --context-length, as train would. */
export async function loadDataForCommand(
  flags: DataFlags,
  maxPositions: number,
  tokenizer?: Tokenizer,
): Promise<LoadedData> {
  const options = compileDataOptions(flags);
  const chosen = tokenizer ?? (await loadDataTokenizer(options));
  const encoding = encodingOptions(options, maxPositions);
  const dataset = loadEncoded(options.dataFile, options, chosen, encoding, (line) =>
    process.stderr.write(line + "\n"),
  );
  return { options, tokenizer: chosen, dataset };
}
