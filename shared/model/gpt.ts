// A GPT-2 decoder (learned positions, pre-LayerNorm, causal multi-head attention, gelu_new MLP, tied
// embeddings) in pure TensorFlow.js. It knows nothing of data, ranks or networks. Parameters are named
// and laid out as Hugging Face's GPT2LMHeadModel stores them, so checkpoints move both ways unchanged.
import * as tf from "@tensorflow/tfjs-core";
import { hashKeys } from "../random.js";
import type { GptConfig } from "./config.js";
import { causalSelfAttention, geluNew, layerNorm, linear, matMul } from "./ops.js";

/** Parameter name → shape, in a fixed order (the order of flattened gradients and checksums). */
export function parameterShapes(config: GptConfig): Map<string, number[]> {
  const { vocabSize: V, maxPositions: P, embedDim: d, layers } = config;
  const shapes = new Map<string, number[]>([
    ["transformer.wte.weight", [V, d]],
    ["transformer.wpe.weight", [P, d]],
  ]);
  for (let i = 0; i < layers; i++) {
    const h = `transformer.h.${i}`;
    shapes.set(`${h}.ln_1.weight`, [d]).set(`${h}.ln_1.bias`, [d]);
    shapes.set(`${h}.attn.c_attn.weight`, [d, 3 * d]).set(`${h}.attn.c_attn.bias`, [3 * d]);
    shapes.set(`${h}.attn.c_proj.weight`, [d, d]).set(`${h}.attn.c_proj.bias`, [d]);
    shapes.set(`${h}.ln_2.weight`, [d]).set(`${h}.ln_2.bias`, [d]);
    shapes.set(`${h}.mlp.c_fc.weight`, [d, 4 * d]).set(`${h}.mlp.c_fc.bias`, [4 * d]);
    shapes.set(`${h}.mlp.c_proj.weight`, [4 * d, d]).set(`${h}.mlp.c_proj.bias`, [d]);
  }
  return shapes.set("transformer.ln_f.weight", [d]).set("transformer.ln_f.bias", [d]);
}

/** GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/√(2·layers), LN gains 1. */
export function initialValues(config: GptConfig, seed: number): Map<string, Float32Array> {
  const values = new Map<string, Float32Array>();
  let k = 0;
  for (const [name, shape] of parameterShapes(config)) {
    const size = shape.reduce((a, b) => a * b, 1);
    if (name.endsWith(".bias")) values.set(name, new Float32Array(size));
    else if (name.includes(".ln_")) values.set(name, new Float32Array(size).fill(1));
    else {
      const std = name.endsWith("c_proj.weight") ? 0.02 / Math.sqrt(2 * config.layers) : 0.02;
      // tfjs treats seed 0 as "unseeded", so derive a non-zero seed per tensor.
      const tensorSeed = hashKeys(seed, k++) || 1;
      // Read outside tidy: a typed array returned from tidy is walked element by element (and GPT-2's
      // 38 M-element embedding overflows the Set tfjs walks it with).
      const drawn = tf.randomNormal(shape, 0, std, "float32", tensorSeed);
      values.set(name, drawn.dataSync() as Float32Array);
      drawn.dispose();
    }
  }
  return values;
}

export class Gpt {
  readonly params: Map<string, tf.Variable>;

  constructor(
    readonly config: GptConfig,
    values: ReadonlyMap<string, Float32Array>,
    trainable = true,
  ) {
    this.params = new Map();
    for (const [name, shape] of parameterShapes(config)) {
      const value = values.get(name);
      if (value === undefined) throw new Error(`missing parameter ${name}`);
      this.params.set(name, variableOf(tf.tensor(value, shape), trainable, `${name}#${Gpt.instances}`));
    }
    Gpt.instances++;
  }
  private static instances = 0;

  private p<R extends tf.Rank>(name: string): tf.Tensor<R> {
    const param = this.params.get(name);
    if (param === undefined) throw new Error(`no parameter ${name}`);
    return param as unknown as tf.Tensor<R>;
  }

  /**
   * ids [B, T] int32 → logits [B·T, V], or [R, V] for just the positions `rows` (int32 indices into B·T:
   * the vocabulary projection is the largest tensor, so it is made only where a loss needs it).
   * `embeddingNoise` [B, T, d] is added to the token embeddings (NEFTune) before the positions.
   */
  forward(ids: tf.Tensor2D, embeddingNoise?: tf.Tensor3D, rows?: tf.Tensor1D): tf.Tensor2D {
    const [B, T] = ids.shape;
    const { embedDim: d, heads, layerNormEps: eps } = this.config;
    const wte = this.p<tf.Rank.R2>("transformer.wte.weight");
    let tokens = tf.reshape(tf.gather(wte, tf.reshape(ids, [B * T])), [B, T, d]) as tf.Tensor3D;
    if (embeddingNoise) tokens = tf.add(tokens, embeddingNoise);
    const positions = tf.slice(this.p<tf.Rank.R2>("transformer.wpe.weight"), [0, 0], [T, d]);
    let x = tf.reshape(tf.add(tokens, positions), [B * T, d]) as tf.Tensor2D; // residual stream [B·T, d]
    for (let i = 0; i < this.config.layers; i++) {
      const h = `transformer.h.${i}`;
      const ln1 = layerNorm(x, this.p(`${h}.ln_1.weight`), this.p(`${h}.ln_1.bias`), eps);
      x = tf.add(x, this.attention(ln1, h, B, heads));
      const ln2 = layerNorm(x, this.p(`${h}.ln_2.weight`), this.p(`${h}.ln_2.bias`), eps);
      const hidden = geluNew(linear(ln2, this.p(`${h}.mlp.c_fc.weight`), this.p(`${h}.mlp.c_fc.bias`)));
      x = tf.add(x, linear(hidden, this.p(`${h}.mlp.c_proj.weight`), this.p(`${h}.mlp.c_proj.bias`)));
    }
    const normed = layerNorm(x, this.p("transformer.ln_f.weight"), this.p("transformer.ln_f.bias"), eps);
    const final = rows ? tf.gather(normed, rows) : normed;
    return matMul(final, tf.transpose(wte)); // tied output embedding: [B·T or R, V]
  }

  /** Causal self-attention of x [B·T, d] → [B·T, d]. */
  private attention(x: tf.Tensor2D, prefix: string, batch: number, heads: number): tf.Tensor2D {
    const qkv = linear(x, this.p(`${prefix}.attn.c_attn.weight`), this.p(`${prefix}.attn.c_attn.bias`));
    const merged = causalSelfAttention(qkv, batch, heads);
    return linear(merged, this.p(`${prefix}.attn.c_proj.weight`), this.p(`${prefix}.attn.c_proj.bias`));
  }

  /** Copies of the current parameter values, by name (a backend with synchronous reads only: not webgpu). */
  snapshot(): Map<string, Float32Array> {
    const values = new Map<string, Float32Array>();
    for (const [name, param] of this.params) values.set(name, param.dataSync() as Float32Array);
    return values;
  }

  /** Copies of the current parameter values, by name, read asynchronously (any backend). */
  async read(): Promise<Map<string, Float32Array>> {
    const names = [...this.params.keys()];
    const values = await Promise.all([...this.params.values()].map((param) => param.data()));
    return new Map(names.map((name, i) => [name, values[i] as Float32Array]));
  }

  dispose(): void {
    for (const param of this.params.values()) param.dispose();
  }
}

/**
 * A variable holding `initial`'s values, with `initial` disposed: a variable shares its initial tensor's
 * data, so a temporary left alive would keep the starting values allocated after the first update.
 */
export function variableOf(initial: tf.Tensor, trainable: boolean, name?: string): tf.Variable {
  const variable = tf.variable(initial, trainable, name);
  initial.dispose();
  return variable;
}
