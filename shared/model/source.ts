// --model: a preset name, a checkpoint directory, or a Hugging Face GPT-2 config.json for a fresh model.
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError } from "../errors.js";
import type { Tokenizer } from "../data/tokenizer.js";
import { loadCheckpoint, readModelConfig, type LoadedCheckpoint } from "./checkpoint.js";
import { presetConfig, type GptConfig } from "./config.js";
import { initialValues } from "./gpt.js";

export interface ModelSource {
  readonly config: GptConfig;
  /** Built on first use: a fresh model's initialisation needs a compute backend, a planner does not. */
  readonly weights: () => Map<string, Float32Array>;
  /** Set when the weights came from a checkpoint (which may carry optimizer and trainer state). */
  readonly checkpoint: LoadedCheckpoint | undefined;
  readonly description: string;
}

async function kind(path: string): Promise<"file" | "dir" | "none"> {
  const info = await stat(path).catch(() => undefined);
  return info === undefined ? "none" : info.isDirectory() ? "dir" : "file";
}

/**
 * A tokenizer whose ids run past the model's vocabulary would fail deep in the embedding lookup
 * ("GatherV2: the index value … is not in [0, …]"), so every command that pairs the two checks first.
 */
export function checkTokenizerFits(dir: string, checkpoint: LoadedCheckpoint, tokenizer: Tokenizer): void {
  if (checkpoint.config.vocabSize < tokenizer.vocabSize) {
    throw new CheckpointError(
      dir,
      `vocab_size ${checkpoint.config.vocabSize} is smaller than tokenizer ${tokenizer.name}'s ${tokenizer.vocabSize}` +
        (checkpoint.tokenizer ? ` (it was trained with --tokenizer ${checkpoint.tokenizer})` : ""),
    );
  }
}

/** The positions --model allows (its context), without loading weights or starting a backend. */
export async function modelPositions(spec: string): Promise<number> {
  const where = await kind(spec);
  if (where === "none") return presetConfig(spec, 1).maxPositions;
  const { config } = await readModelConfig(where === "dir" ? join(spec, "config.json") : spec);
  return config.maxPositions;
}

export async function resolveModel(spec: string, tokenizer: Tokenizer, seed: number): Promise<ModelSource> {
  const where = await kind(spec);
  if (where === "dir" && (await kind(join(spec, "model.safetensors"))) === "file") {
    const checkpoint = await loadCheckpoint(spec);
    checkTokenizerFits(spec, checkpoint, tokenizer);
    return {
      config: checkpoint.config,
      weights: () => checkpoint.weights,
      checkpoint,
      description: `checkpoint ${spec}`,
    };
  }
  if (where !== "none") {
    const configFile = where === "dir" ? join(spec, "config.json") : spec;
    const { config } = await readModelConfig(configFile);
    if (config.vocabSize < tokenizer.vocabSize) {
      throw new CheckpointError(
        configFile,
        `vocab_size ${config.vocabSize} < tokenizer's ${tokenizer.vocabSize}`,
      );
    }
    return {
      config,
      weights: () => initialValues(config, seed),
      checkpoint: undefined,
      description: `fresh model from ${configFile}`,
    };
  }
  const config = presetConfig(spec, tokenizer.vocabSize);
  return {
    config,
    weights: () => initialValues(config, seed),
    checkpoint: undefined,
    description: `fresh ${spec} preset`,
  };
}
