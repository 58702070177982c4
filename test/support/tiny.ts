// Small, generated fixtures shared by tests: a synthetic data file and a tiny model shape.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSynthetic, writeSyntheticJsonl } from "../../shared/data/synth.js";
import { encodeConversations, type Dataset } from "../../shared/data/dataset.js";
import { readDataFile } from "../../shared/data/formats.js";
import { ByteTokenizer } from "../../shared/data/tokenizers/byte.js";
import type { GptConfig } from "../../shared/model/config.js";

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `imtrain-${prefix}-`));
}

/** Writes `examples` synthetic Alpaca records (short, so tiny models and contexts fit) and returns the path. */
export function writeSyntheticData(dir: string, examples: number, seed = 1, name = "train.jsonl"): string {
  const file = join(dir, name);
  writeSyntheticJsonl(file, generateSynthetic({ examples, seed, instructionWords: 8, outputWords: 3 }));
  return file;
}

export function byteDataset(file: string, promptLossWeight: number, contextLength = 128): Dataset {
  return encodeConversations(file, readDataFile(file, "auto"), new ByteTokenizer(), {
    format: "auto",
    template: "tulu",
    weighting: { promptLossWeight, templateLossWeight: 0 },
    lastTurnOnly: false,
    contextLength,
    truncation: "prompt",
  });
}

/** Small enough that a forward/backward takes milliseconds. */
export const MICRO_CONFIG: GptConfig = {
  vocabSize: 257,
  maxPositions: 128,
  embedDim: 16,
  layers: 1,
  heads: 2,
  layerNormEps: 1e-5,
};

/** Writes a Hugging Face GPT-2 config.json for a model small enough for multi-process tests; returns its path. */
export function writeMicroModelConfig(dir: string): string {
  const file = join(dir, "micro-gpt2.json");
  writeFileSync(
    file,
    JSON.stringify({ vocab_size: 257, n_positions: 128, n_embd: 32, n_layer: 1, n_head: 2 }),
  );
  return file;
}
