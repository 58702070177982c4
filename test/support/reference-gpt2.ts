// An independent GPT-2 forward pass in plain JavaScript (float64, loops), written from Hugging Face's
// modeling_gpt2.py rather than from our tfjs model, to check that model against. Deliberately naive: one
// sequence at a time, no batching, no masking tricks (attention simply never looks at later keys).
import { mulberry32 } from "../../shared/random.js";

/** The fields of a GPT-2 config.json the forward pass needs (GptConfig fits). */
export interface ReferenceConfig {
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly embedDim: number;
  readonly layers: number;
  readonly heads: number;
  readonly layerNormEps: number;
}

/** Weights by Hugging Face name, with or without the GPT2LMHeadModel "transformer." prefix. */
export type ReferenceWeights = ReadonlyMap<string, ArrayLike<number>>;

/**
 * GPT2Model's parameters as `GPT2Model.state_dict()` names and shapes them (no "transformer." prefix).
 * Conv1D weights are [in, out].
 */
export function gpt2ParameterShapes(config: ReferenceConfig): Map<string, number[]> {
  const { vocabSize: V, maxPositions: P, embedDim: d } = config;
  const shapes = new Map<string, number[]>([
    ["wte.weight", [V, d]],
    ["wpe.weight", [P, d]],
  ]);
  for (let i = 0; i < config.layers; i++) {
    shapes.set(`h.${i}.ln_1.weight`, [d]);
    shapes.set(`h.${i}.ln_1.bias`, [d]);
    shapes.set(`h.${i}.attn.c_attn.weight`, [d, 3 * d]);
    shapes.set(`h.${i}.attn.c_attn.bias`, [3 * d]);
    shapes.set(`h.${i}.attn.c_proj.weight`, [d, d]);
    shapes.set(`h.${i}.attn.c_proj.bias`, [d]);
    shapes.set(`h.${i}.ln_2.weight`, [d]);
    shapes.set(`h.${i}.ln_2.bias`, [d]);
    shapes.set(`h.${i}.mlp.c_fc.weight`, [d, 4 * d]);
    shapes.set(`h.${i}.mlp.c_fc.bias`, [4 * d]);
    shapes.set(`h.${i}.mlp.c_proj.weight`, [4 * d, d]);
    shapes.set(`h.${i}.mlp.c_proj.bias`, [d]);
  }
  shapes.set("ln_f.weight", [d]);
  shapes.set("ln_f.bias", [d]);
  return shapes;
}

/**
 * Seeded random weights with every term switched on: non-zero biases, LayerNorm gains away from 1 and
 * matrices scaled by 1/√fan_in so attention is neither uniform nor one-hot. Keys as gpt2ParameterShapes.
 */
export function randomGpt2Weights(config: ReferenceConfig, seed: number): Map<string, Float32Array> {
  const uniform = mulberry32(seed);
  const normal = (): number => {
    // Box–Muller; 1 − u keeps the logarithm finite.
    const u = 1 - uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of gpt2ParameterShapes(config)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    const isLayerNorm = name.includes("ln_");
    for (let i = 0; i < size; i++) {
      if (name === "wte.weight") values[i] = 0.5 * normal();
      else if (name === "wpe.weight") values[i] = 0.3 * normal();
      else if (isLayerNorm && name.endsWith(".weight")) values[i] = 1 + 0.3 * normal();
      else if (name.endsWith(".bias")) values[i] = 0.2 * normal();
      else values[i] = normal() / Math.sqrt(shape[0] ?? 1);
    }
    weights.set(name, values);
  }
  return weights;
}

function lookup(weights: ReferenceWeights, name: string): ArrayLike<number> {
  const value = weights.get(`transformer.${name}`) ?? weights.get(name);
  if (value === undefined) throw new Error(`reference GPT-2: no weight ${name}`);
  return value;
}

function at(values: ArrayLike<number>, i: number): number {
  const value = values[i];
  if (value === undefined) throw new Error(`reference GPT-2: index ${i} out of range`);
  return value;
}

/** nn.LayerNorm over one vector: biased variance, eps inside the square root. */
function layerNorm(
  x: readonly number[],
  gain: ArrayLike<number>,
  bias: ArrayLike<number>,
  eps: number,
): number[] {
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length;
  const scale = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * scale * at(gain, i) + at(bias, i));
}

/** HF Conv1D: y = x @ W + b with W stored [in, out]. */
function conv1d(x: readonly number[], weight: ArrayLike<number>, bias: ArrayLike<number>): number[] {
  const out = bias.length;
  const y = Array.from({ length: out }, (_, j) => at(bias, j));
  for (let i = 0; i < x.length; i++) {
    const xi = x[i] ?? 0;
    for (let j = 0; j < out; j++) y[j] = (y[j] ?? 0) + xi * at(weight, i * out + j);
  }
  return y;
}

/** ACT2FN["gelu_new"]: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
function geluNew(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

function addInPlace(into: number[][], delta: readonly (readonly number[])[]): void {
  into.forEach((row, t) => row.forEach((v, j) => (row[j] = v + (delta[t]?.[j] ?? NaN))));
}

/** Causal multi-head self-attention of one sequence a [T, d] → [T, d] (before c_proj). */
function attention(qkv: readonly (readonly number[])[], d: number, heads: number): number[][] {
  const hs = d / heads;
  const merged = qkv.map(() => new Array<number>(d).fill(0));
  for (let n = 0; n < heads; n++) {
    // Head n reads columns n·hs … (n+1)·hs of each of the query, key and value thirds of c_attn's output.
    const q = (t: number, c: number): number => at(qkv[t] ?? [], n * hs + c);
    const k = (t: number, c: number): number => at(qkv[t] ?? [], d + n * hs + c);
    const v = (t: number, c: number): number => at(qkv[t] ?? [], 2 * d + n * hs + c);
    for (let t = 0; t < qkv.length; t++) {
      const scores: number[] = [];
      for (let u = 0; u <= t; u++) {
        let dot = 0;
        for (let c = 0; c < hs; c++) dot += q(t, c) * k(u, c);
        scores.push(dot / Math.sqrt(hs));
      }
      const max = Math.max(...scores);
      const exps = scores.map((s) => Math.exp(s - max));
      const total = exps.reduce((a, b) => a + b, 0);
      const row = merged[t] ?? [];
      for (let c = 0; c < hs; c++) {
        let sum = 0;
        for (let u = 0; u <= t; u++) sum += ((exps[u] ?? 0) / total) * v(u, c);
        row[n * hs + c] = sum;
      }
    }
  }
  return merged;
}

/** GPT2LMHeadModel logits of one sequence: ids [T] → [T][V], the LM head tied to wte. */
export function referenceLogits(
  config: ReferenceConfig,
  weights: ReferenceWeights,
  ids: readonly number[],
): number[][] {
  const { embedDim: d, vocabSize: V, layerNormEps: eps } = config;
  if (ids.length > config.maxPositions) throw new Error(`reference GPT-2: ${ids.length} > n_positions`);
  const w = (name: string): ArrayLike<number> => lookup(weights, name);
  const wte = w("wte.weight");
  const wpe = w("wpe.weight");
  const h = ids.map((id, t) => Array.from({ length: d }, (_, j) => at(wte, id * d + j) + at(wpe, t * d + j)));
  for (let l = 0; l < config.layers; l++) {
    const p = `h.${l}`;
    const ln1 = h.map((x) => layerNorm(x, w(`${p}.ln_1.weight`), w(`${p}.ln_1.bias`), eps));
    const qkv = ln1.map((x) => conv1d(x, w(`${p}.attn.c_attn.weight`), w(`${p}.attn.c_attn.bias`)));
    const context = attention(qkv, d, config.heads);
    addInPlace(
      h,
      context.map((x) => conv1d(x, w(`${p}.attn.c_proj.weight`), w(`${p}.attn.c_proj.bias`))),
    );
    const ln2 = h.map((x) => layerNorm(x, w(`${p}.ln_2.weight`), w(`${p}.ln_2.bias`), eps));
    const hidden = ln2.map((x) => conv1d(x, w(`${p}.mlp.c_fc.weight`), w(`${p}.mlp.c_fc.bias`)).map(geluNew));
    addInPlace(
      h,
      hidden.map((x) => conv1d(x, w(`${p}.mlp.c_proj.weight`), w(`${p}.mlp.c_proj.bias`))),
    );
  }
  return h.map((x) => {
    const final = layerNorm(x, w("ln_f.weight"), w("ln_f.bias"), eps);
    return Array.from({ length: V }, (_, v) => final.reduce((sum, f, j) => sum + f * at(wte, v * d + j), 0));
  });
}

/** −log softmax(logits)[target], computed stably. */
export function referenceCrossEntropy(logits: readonly number[], target: number): number {
  const max = Math.max(...logits);
  const logTotal = Math.log(logits.reduce((a, b) => a + Math.exp(b - max), 0)) + max;
  return logTotal - at(logits, target);
}
