// Shared set-up of the commands that use a trained model: backend, checkpoint, its tokenizer.
import { join } from "node:path";
import { selectBackend, type BackendName } from "../shared/backend/select.js";
import type { Tokenizer } from "../shared/data/tokenizer.js";
import { loadTokenizer } from "../shared/data/tokenizers/index.js";
import { CheckpointError, OptionError } from "../shared/errors.js";
import { isCheckpointDir, loadCheckpoint } from "../shared/model/checkpoint.js";
import { Gpt } from "../shared/model/gpt.js";
import { checkTokenizerFits } from "../shared/model/source.js";

export interface LoadedModel {
  readonly model: Gpt;
  readonly tokenizer: Tokenizer;
}

const BUILT_IN_TOKENIZERS = new Set(["byte", "gpt2"]);

/** --model names a checkpoint, or a run directory holding one in checkpoint/. */
async function findCheckpoint(dir: string): Promise<string> {
  if (await isCheckpointDir(dir)) return dir;
  if (await isCheckpointDir(join(dir, "checkpoint"))) return join(dir, "checkpoint");
  throw new OptionError(
    "model",
    `${dir} is not a checkpoint (no config.json and model.safetensors in it or in its checkpoint/)`,
  );
}

/** `tokenizer` overrides the one recorded in the checkpoint (needed for a Hugging Face GPT-2). */
export async function loadModelForCommand(
  dir: string,
  backend: BackendName,
  tokenizer: string | undefined,
): Promise<LoadedModel> {
  const checkpointDir = await findCheckpoint(dir);
  await selectBackend(backend);
  const checkpoint = await loadCheckpoint(checkpointDir);
  const spec = tokenizer ?? checkpoint.tokenizer;
  if (spec === undefined)
    throw new CheckpointError(checkpointDir, "records no tokenizer; pass --tokenizer (e.g. gpt2)");
  const recorded = checkpoint.tokenizer;
  // Two built-ins are never interchangeable, even where one's ids fit the other's vocabulary.
  if (
    recorded !== undefined &&
    BUILT_IN_TOKENIZERS.has(recorded) &&
    BUILT_IN_TOKENIZERS.has(spec) &&
    recorded !== spec
  )
    throw new CheckpointError(
      checkpointDir,
      `was trained with --tokenizer ${recorded}, not ${spec} (drop --tokenizer to use the checkpoint's)`,
    );
  const loaded = await loadTokenizer(spec);
  checkTokenizerFits(checkpointDir, checkpoint, loaded);
  return { model: new Gpt(checkpoint.config, checkpoint.weights, false), tokenizer: loaded };
}
