import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import {
  gpt2ParameterShapes,
  randomGpt2Weights,
  referenceCrossEntropy,
  referenceLogits,
  type ReferenceConfig,
} from "../support/reference-gpt2.js";

const CLI = fileURLToPath(new URL("../../cli/main.js", import.meta.url));

// vocab_size 257 = the byte tokenizer's 256 bytes + </s> (id 256).
const EOS_ID = 256;
const CONFIG: ReferenceConfig = {
  vocabSize: 257,
  maxPositions: 64,
  embedDim: 16,
  layers: 1,
  heads: 2,
  layerNormEps: 1e-5,
};

const HF_CONFIG = {
  model_type: "gpt2",
  architectures: ["GPT2LMHeadModel"],
  vocab_size: CONFIG.vocabSize,
  n_positions: CONFIG.maxPositions,
  n_ctx: CONFIG.maxPositions,
  n_embd: CONFIG.embedDim,
  n_layer: CONFIG.layers,
  n_head: CONFIG.heads,
  n_inner: null,
  activation_function: "gelu_new",
  layer_norm_epsilon: CONFIG.layerNormEps,
  resid_pdrop: 0.1,
  embd_pdrop: 0.1,
  attn_pdrop: 0.1,
  initializer_range: 0.02,
  bos_token_id: EOS_ID,
  eos_token_id: EOS_ID,
  tie_word_embeddings: true,
};

interface AlpacaRecord {
  readonly instruction: string;
  readonly input: string;
  readonly output: string;
}

// Short enough that every example fits in 64 positions untruncated; different lengths so the CLI pads.
const RECORDS: readonly AlpacaRecord[] = [
  { instruction: "Add two and two.", input: "", output: "4" },
  { instruction: "Name a colour.", input: "warm", output: "Red." },
  { instruction: "Greet me", input: "", output: "Hello there!" },
];

/** The tulu template by hand: `<|user|>\n{instruction}[\n{input}]\n<|assistant|>\n{output}</s>`, bytes. */
function encodeTulu(record: AlpacaRecord): { ids: number[]; outputTokens: number } {
  const prompt = `<|user|>\n${record.instruction}${record.input ? `\n${record.input}` : ""}\n<|assistant|>\n`;
  const output = [...Buffer.from(record.output, "utf8"), EOS_ID];
  return { ids: [...Buffer.from(prompt, "utf8"), ...output], outputTokens: output.length };
}

/** Mean cross-entropy of predicting the output tokens (the output text and its </s>), from the reference. */
function referenceOutputLoss(weights: ReadonlyMap<string, Float32Array>, record: AlpacaRecord): number {
  const { ids, outputTokens } = encodeTulu(record);
  const logits = referenceLogits(CONFIG, weights, ids.slice(0, -1)); // position t predicts ids[t + 1]
  let sum = 0;
  for (let i = ids.length - outputTokens; i < ids.length; i++) {
    sum += referenceCrossEntropy(logits[i - 1] ?? [], ids[i] ?? -1);
  }
  return sum / outputTokens;
}

interface RawTensor {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

function f32(shape: readonly number[], values: Float32Array): RawTensor {
  return {
    dtype: "F32",
    shape,
    bytes: new Uint8Array(Buffer.from(values.buffer, values.byteOffset, values.byteLength)),
  };
}

type MaskDtype = "BOOL" | "U8" | "F32";

/** Lower-triangular ones, [1, 1, P, P]: the causal-mask buffer old checkpoints carry as `h.N.attn.bias`. */
function trilBuffer(dtype: MaskDtype, positions: number): RawTensor {
  const values = new Float32Array(positions * positions);
  for (let q = 0; q < positions; q++) for (let k = 0; k <= q; k++) values[q * positions + k] = 1;
  const shape = [1, 1, positions, positions];
  return dtype === "F32" ? f32(shape, values) : { dtype, shape, bytes: Uint8Array.from(values) };
}

/** A safetensors file from the format description: u64 LE header length, JSON header, data. */
function safetensorsBytes(tensors: ReadonlyMap<string, RawTensor>): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of tensors) {
    header[name] = {
      dtype: tensor.dtype,
      shape: tensor.shape,
      data_offsets: [offset, offset + tensor.bytes.byteLength],
    };
    chunks.push(tensor.bytes);
    offset += tensor.bytes.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.byteLength));
  return Buffer.concat([length, json, ...chunks]);
}

/**
 * What `GPT2LMHeadModel.save_pretrained` of older transformers writes: GPT2Model names, a tied
 * lm_head.weight and each layer's causal-mask buffer (with `masked_bias`, the scalar −1e4, when float).
 */
function hfTensors(weights: ReadonlyMap<string, Float32Array>, maskDtype: MaskDtype): Map<string, RawTensor> {
  const tensors = new Map<string, RawTensor>();
  for (const [name, shape] of gpt2ParameterShapes(CONFIG)) {
    const values = weights.get(name);
    assert.ok(values !== undefined, name);
    tensors.set(name, f32(shape, values));
  }
  for (let i = 0; i < CONFIG.layers; i++) {
    tensors.set(`h.${i}.attn.bias`, trilBuffer(maskDtype, CONFIG.maxPositions));
    if (maskDtype === "F32") tensors.set(`h.${i}.attn.masked_bias`, f32([], Float32Array.of(-1e4)));
  }
  const wte = weights.get("wte.weight");
  assert.ok(wte !== undefined);
  tensors.set("lm_head.weight", f32([CONFIG.vocabSize, CONFIG.embedDim], wte));
  return tensors;
}

async function writeModel(dir: string, tensors: ReadonlyMap<string, RawTensor>): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "config.json"), JSON.stringify(HF_CONFIG, null, 2));
  const file = join(dir, "model.safetensors");
  await writeFile(file, safetensorsBytes(tensors));
  return file;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "imtrain-hf-checkpoint-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function writeData(dir: string): Promise<string> {
  const file = join(dir, "alpaca.jsonl");
  await writeFile(file, RECORDS.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return file;
}

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runCli(args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function score(modelDir: string, dataFile: string): Promise<CliResult> {
  return runCli(["score", "--model", modelDir, "--data", dataFile, "--tokenizer", "byte", "--json"]);
}

interface ScoreLine {
  readonly index: number;
  readonly output_loss: number;
  readonly all_loss: number;
  readonly output_tokens: number;
  readonly tokens: number;
}

function parseScoreLines(stdout: string): ScoreLine[] {
  return stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as ScoreLine);
}

/** exit 2 and exactly one stderr line, `imtrain: …`, that names `file` and says what is wrong. */
function assertCheckpointRejected(result: CliResult, file: string, reason: RegExp): void {
  assert.equal(result.code, 2, `exit ${result.code}; stderr: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${result.stderr}`);
  const line = lines[0] ?? "";
  assert.match(line, /^imtrain: /);
  assert.ok(line.includes(file), `message should name ${file}: ${line}`);
  assert.match(line, reason);
}

const WEIGHTS = randomGpt2Weights(CONFIG, 2024);

/** Scores RECORDS with the CLI and checks each line against the plain-JS GPT-2 on the same weights. */
async function assertScoresMatchReference(
  dir: string,
  tensors: ReadonlyMap<string, RawTensor>,
): Promise<void> {
  const modelDir = join(dir, "gpt2-tiny");
  await writeModel(modelDir, tensors);
  const result = await score(modelDir, await writeData(dir));
  assert.equal(result.code, 0, `exit ${result.code}; stderr: ${result.stderr}`);
  const lines = parseScoreLines(result.stdout);
  assert.equal(lines.length, RECORDS.length, `stdout:\n${result.stdout}`);
  lines.forEach((line, i) => {
    const record = RECORDS[i];
    assert.ok(record !== undefined);
    const { ids, outputTokens } = encodeTulu(record);
    assert.equal(line.index, i);
    assert.equal(line.output_tokens, outputTokens, `example ${i} output tokens`);
    assert.equal(line.tokens, ids.length - 1, `example ${i} predicted tokens`);
    assert.ok(Number.isFinite(line.output_loss) && Number.isFinite(line.all_loss), JSON.stringify(line));
    const expected = referenceOutputLoss(WEIGHTS, record);
    assert.ok(
      Math.abs(line.output_loss - expected) < 1e-4,
      `example ${i}: output_loss ${line.output_loss}, plain-JS GPT-2 says ${expected}`,
    );
  });
}

test("a tiny GPT-2 written by the test in Hugging Face layout loads and scores", async () => {
  await withTempDir((dir) => assertScoresMatchReference(dir, hfTensors(WEIGHTS, "BOOL")));
});

test("float32 attn.bias and attn.masked_bias buffers, as the hub's gpt2 carries, are ignored", async () => {
  // The hub's gpt2 model.safetensors stores h.N.attn.bias as F32 [1, 1, 1024, 1024].
  await withTempDir((dir) => assertScoresMatchReference(dir, hfTensors(WEIGHTS, "F32")));
});

test("a checkpoint with a tensor of the wrong shape fails with one line naming the file", async () => {
  await withTempDir(async (dir) => {
    const tensors = hfTensors(WEIGHTS, "BOOL");
    // Stored as nn.Linear would ([out, in]) instead of Conv1D's [in, out].
    const d = CONFIG.embedDim;
    tensors.set(
      "h.0.mlp.c_fc.weight",
      f32([4 * d, d], WEIGHTS.get("h.0.mlp.c_fc.weight") ?? new Float32Array()),
    );
    const file = await writeModel(join(dir, "model"), tensors);
    const result = await score(join(dir, "model"), await writeData(dir));
    assertCheckpointRejected(result, file, /h\.0\.mlp\.c_fc\.weight/);
  });
});

test("a checkpoint missing a tensor fails with one line naming the file", async () => {
  await withTempDir(async (dir) => {
    const tensors = hfTensors(WEIGHTS, "BOOL");
    tensors.delete("ln_f.bias");
    const file = await writeModel(join(dir, "model"), tensors);
    const result = await score(join(dir, "model"), await writeData(dir));
    assertCheckpointRejected(result, file, /ln_f\.bias/);
  });
});
