// Model shape: presets, and Hugging Face GPT-2 `config.json` in and out.
import { UserError } from "../errors.js";

export interface GptConfig {
  readonly vocabSize: number;
  /** Learned positions: the longest sequence the model can see. */
  readonly maxPositions: number;
  readonly embedDim: number;
  readonly layers: number;
  readonly heads: number;
  readonly layerNormEps: number;
}

type Shape = Omit<GptConfig, "vocabSize" | "layerNormEps">;

export const MODEL_PRESETS: Record<string, Shape> = {
  // Quick enough to train in tests on 2 CPU cores.
  tiny: { maxPositions: 256, embedDim: 64, layers: 2, heads: 4 },
  small: { maxPositions: 512, embedDim: 128, layers: 4, heads: 4 },
  medium: { maxPositions: 512, embedDim: 256, layers: 6, heads: 8 },
  // The shape of OpenAI's GPT-2 124M, for GPUs.
  gpt2: { maxPositions: 1024, embedDim: 768, layers: 12, heads: 12 },
};

export function presetConfig(name: string, vocabSize: number): GptConfig {
  const shape = MODEL_PRESETS[name];
  if (shape === undefined) {
    throw new UserError(
      `--model: "${name}" is not a preset (${Object.keys(MODEL_PRESETS).join(", ")}), a checkpoint directory, or a config.json`,
    );
  }
  return { ...shape, vocabSize, layerNormEps: 1e-5 };
}

function positiveInt(json: Record<string, unknown>, key: string, where: string): number {
  const value = json[key];
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
    throw new UserError(`${where}: "${key}" must be a positive integer (got ${JSON.stringify(value)})`);
  }
  return value;
}

/** Reads the fields of a Hugging Face GPT-2 config.json that fix the shape. */
export function configFromHuggingFace(json: unknown, where: string): GptConfig {
  if (typeof json !== "object" || json === null) throw new UserError(`${where}: not a JSON object`);
  const fields = json as Record<string, unknown>;
  const activation = fields["activation_function"] ?? "gelu_new";
  if (activation !== "gelu_new") {
    throw new UserError(
      `${where}: activation_function "${String(activation)}" is not supported (gelu_new only)`,
    );
  }
  const config: GptConfig = {
    vocabSize: positiveInt(fields, "vocab_size", where),
    maxPositions: positiveInt(fields, "n_positions", where),
    embedDim: positiveInt(fields, "n_embd", where),
    layers: positiveInt(fields, "n_layer", where),
    heads: positiveInt(fields, "n_head", where),
    layerNormEps: typeof fields["layer_norm_epsilon"] === "number" ? fields["layer_norm_epsilon"] : 1e-5,
  };
  if (config.embedDim % config.heads !== 0) {
    throw new UserError(`${where}: n_embd ${config.embedDim} is not divisible by n_head ${config.heads}`);
  }
  return config;
}

export function configToHuggingFace(config: GptConfig): Record<string, unknown> {
  return {
    model_type: "gpt2",
    architectures: ["GPT2LMHeadModel"],
    vocab_size: config.vocabSize,
    n_positions: config.maxPositions,
    n_ctx: config.maxPositions,
    n_embd: config.embedDim,
    n_layer: config.layers,
    n_head: config.heads,
    layer_norm_epsilon: config.layerNormEps,
    activation_function: "gelu_new",
    tie_word_embeddings: true,
  };
}
