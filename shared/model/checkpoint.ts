// Checkpoints on disk, in Hugging Face GPT-2 layout so they load in `transformers` and back:
//   DIR/config.json          GPT-2 config (+ "imtrain": tokenizer and trainer state)
//   DIR/model.safetensors    transformer.* tensors, Conv1D weights stored [in, out]
//   DIR/optimizer.safetensors AdamW moments m.<name>, v.<name> (absent in exported models)
//   DIR/manifest.json        size and SHA-256 of each file above (checkpoint-manifest.ts)
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { CheckpointError } from "../errors.js";
import { configFromHuggingFace, configToHuggingFace, type GptConfig } from "./config.js";
import { parameterShapes } from "./gpt.js";
import type { Trajectory } from "../train/trajectory.js";
import { pruneCheckpoints, retireCheckpoint } from "./checkpoint-history.js";
import { exists, syncDirectory, writeFileSynced, writeManifest } from "./checkpoint-manifest.js";
import { readSafetensors, writeSafetensors, type HostTensor } from "./safetensors.js";

/** What a resumed job needs beyond weights and moments. */
export interface TrainerState {
  /** Optimizer steps completed; the next step to run. */
  readonly step: number;
  readonly seed: number;
  readonly tokenizer: string;
  /** What determined the run's trajectory (trajectory.ts); absent in checkpoints of older versions. */
  readonly trajectory?: Trajectory;
}

export interface LoadedCheckpoint {
  readonly config: GptConfig;
  readonly weights: Map<string, Float32Array>;
  readonly optimizer: Map<string, Float32Array> | undefined;
  readonly trainer: TrainerState | undefined;
  readonly tokenizer: string | undefined;
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    throw new CheckpointError(path, `cannot read JSON: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * HF checkpoints of GPT2Model omit the "transformer." prefix, may carry a tied lm_head, and older ones
 * store the causal mask as buffers (`h.N.attn.bias`, `h.N.attn.masked_bias`, in any dtype).
 */
function canonicalName(name: string): string | undefined {
  if (name === "lm_head.weight") return undefined; // tied to wte
  if (name.endsWith(".attn.bias") || name.endsWith(".attn.masked_bias")) return undefined;
  return name.startsWith("transformer.") ? name : `transformer.${name}`;
}

export async function isCheckpointDir(dir: string): Promise<boolean> {
  return (await exists(join(dir, "config.json"))) && (await exists(join(dir, "model.safetensors")));
}

export async function readModelConfig(
  path: string,
): Promise<{ config: GptConfig; json: Record<string, unknown> }> {
  const json = await readJson(path);
  return { config: configFromHuggingFace(json, path), json: json as Record<string, unknown> };
}

export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const { config, json } = await readModelConfig(join(dir, "config.json"));
  const file = join(dir, "model.safetensors");
  const { tensors } = await readSafetensors(file);
  const weights = new Map<string, Float32Array>();
  const expected = parameterShapes(config);
  for (const [rawName, tensor] of tensors) {
    const name = canonicalName(rawName);
    if (name === undefined) continue;
    const shape = expected.get(name);
    if (shape === undefined) throw new CheckpointError(file, `unexpected tensor ${rawName}`);
    if (shape.join(",") !== tensor.shape.join(",")) {
      throw new CheckpointError(file, `${rawName} has shape [${tensor.shape}], config says [${shape}]`);
    }
    weights.set(name, tensor.data);
  }
  const missing = [...expected.keys()].filter((name) => !weights.has(name));
  if (missing.length > 0)
    throw new CheckpointError(file, `missing tensors: ${missing.slice(0, 5).join(", ")}`);

  const optimizerFile = join(dir, "optimizer.safetensors");
  const optimizer = (await exists(optimizerFile))
    ? new Map(
        [...(await readSafetensors(optimizerFile)).tensors].map(([k, t]: [string, HostTensor]) => [
          k,
          t.data,
        ]),
      )
    : undefined;
  const imtrain = (json["imtrain"] ?? {}) as { trainer?: TrainerState; tokenizer?: string };
  return { config, weights, optimizer, trainer: imtrain.trainer, tokenizer: imtrain.tokenizer };
}

export interface CheckpointContents {
  readonly config: GptConfig;
  readonly weights: ReadonlyMap<string, Float32Array>;
  readonly tokenizer: string;
  readonly optimizer?: ReadonlyMap<string, Float32Array>;
  readonly trainer?: TrainerState;
}

function hostTensors(
  values: ReadonlyMap<string, Float32Array>,
  shapeOf: (name: string) => number[] | undefined,
): Map<string, HostTensor> {
  const tensors = new Map<string, HostTensor>();
  for (const [name, data] of values) {
    const shape = shapeOf(name);
    if (shape === undefined) throw new Error(`no shape for ${name}`);
    tensors.set(name, { shape, data });
  }
  return tensors;
}

/**
 * Writes a checkpoint into a fresh sibling directory (every file synced, then a manifest of their
 * checksums), then swaps it in: a crash never leaves half of one. The one it replaces is kept as
 * DIR.step-N while fewer than `keep` are kept (checkpoint-history.ts).
 */
export async function saveCheckpoint(dir: string, contents: CheckpointContents, keep = 1): Promise<void> {
  const staging = `${dir}.partial`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const shapes = parameterShapes(contents.config);
  const config = {
    ...configToHuggingFace(contents.config),
    imtrain: { tokenizer: contents.tokenizer, ...(contents.trainer ? { trainer: contents.trainer } : {}) },
  };
  await writeFileSynced(join(staging, "config.json"), JSON.stringify(config, null, 2) + "\n");
  const weights = hostTensors(contents.weights, (name) => shapes.get(name));
  await writeSafetensors(join(staging, "model.safetensors"), weights, { format: "pt" });
  if (contents.optimizer) {
    // Moments are named "m.<param>" / "v.<param>".
    const moments = hostTensors(contents.optimizer, (name) => shapes.get(name.slice(2)));
    await writeSafetensors(join(staging, "optimizer.safetensors"), moments);
  }
  const files = [
    "config.json",
    "model.safetensors",
    ...(contents.optimizer ? ["optimizer.safetensors"] : []),
  ];
  await writeManifest(staging, files);
  await syncDirectory(staging);
  await retireCheckpoint(dir, keep);
  await rename(staging, dir);
  await syncDirectory(dirname(dir));
  await pruneCheckpoints(dir, keep);
}
