// Shared set-up of the commands that use a trained model: backend, checkpoint, its tokenizer.
import { selectBackend, type BackendName } from "../shared/backend/select.js";
import type { Tokenizer } from "../shared/data/tokenizer.js";
import { loadTokenizer } from "../shared/data/tokenizers/index.js";
import { CheckpointError } from "../shared/errors.js";
import { loadCheckpoint } from "../shared/model/checkpoint.js";
import { Gpt } from "../shared/model/gpt.js";

export interface LoadedModel {
  readonly model: Gpt;
  readonly tokenizer: Tokenizer;
}

/** `tokenizer` overrides the one recorded in the checkpoint (needed for a Hugging Face GPT-2). */
export async function loadModelForCommand(
  dir: string,
  backend: BackendName,
  tokenizer: string | undefined,
): Promise<LoadedModel> {
  await selectBackend(backend);
  const checkpoint = await loadCheckpoint(dir);
  const spec = tokenizer ?? checkpoint.tokenizer;
  if (spec === undefined)
    throw new CheckpointError(dir, "records no tokenizer; pass --tokenizer (e.g. gpt2)");
  return {
    model: new Gpt(checkpoint.config, checkpoint.weights, false),
    tokenizer: await loadTokenizer(spec),
  };
}
