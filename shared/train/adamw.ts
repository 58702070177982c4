// AdamW (decoupled weight decay, Loshchilov & Hutter) on tfjs variables. Every rank applies it to the
// same all-reduced gradients with the same ops, so ranks stay bit-identical.
import * as tf from "@tensorflow/tfjs-core";
import type { StepBufferLayout } from "./step-buffer.js";
import { variableOf } from "../model/gpt.js";
import { FUSED_KERNELS, hasFusedKernels, type AdamWUpdate } from "../backend/fused-kernels.js";

export interface AdamWOptions {
  readonly beta1: number;
  readonly beta2: number;
  readonly adamEpsilon: number;
  readonly weightDecay: number;
}

export class AdamW {
  private readonly moments = new Map<string, { m: tf.Variable; v: tf.Variable }>();
  /** Updates applied so far (Adam's t). */
  stepCount = 0;

  constructor(
    private readonly params: ReadonlyMap<string, tf.Variable>,
    private readonly options: AdamWOptions,
  ) {
    for (const [name, param] of params) {
      this.moments.set(name, {
        m: variableOf(tf.zerosLike(param), false),
        v: variableOf(tf.zerosLike(param), false),
      });
    }
  }

  /**
   * Applies one update from flat gradients already divided by the step's normaliser. The gradients go to
   * the backend in one upload and are sliced there, and the step's constants become tensors once: a copy to
   * the backend (on a GPU, a round trip) per step, not per parameter.
   */
  apply(layout: StepBufferLayout, gradients: Float32Array, lr: number): void {
    const { beta1, beta2, adamEpsilon, weightDecay } = this.options;
    this.stepCount++;
    const correction1 = 1 - beta1 ** this.stepCount;
    const correction2 = 1 - beta2 ** this.stepCount;
    const fused = hasFusedKernels();
    const all = tf.tensor1d(gradients);
    const c = fused
      ? undefined
      : {
          beta1: tf.scalar(beta1),
          oneMinusBeta1: tf.scalar(1 - beta1),
          beta2: tf.scalar(beta2),
          oneMinusBeta2: tf.scalar(1 - beta2),
          correction1: tf.scalar(correction1),
          correction2: tf.scalar(correction2),
          epsilon: tf.scalar(adamEpsilon),
          kept: tf.scalar(1 - lr * weightDecay),
          lr: tf.scalar(lr),
        };
    for (const [name, param] of this.params) {
      const { m, v } = this.moments.get(name) ?? { m: param, v: param };
      // Decay matrices only (weights and embeddings), not biases or LayerNorm gains, as GPT-2 recipes do.
      const decayed = param.rank >= 2;
      const offset = layout.offsets.get(name);
      if (offset === undefined) throw new Error(`AdamW: the step buffer has no gradients for ${name}`);
      tf.tidy(() => {
        if (c === undefined) {
          // The fused update reads its gradients where they sit in `all`: no slice per parameter.
          const update: AdamWUpdate = {
            beta1,
            beta2,
            epsilon: adamEpsilon,
            correction1,
            correction2,
            lr,
            decay: decayed ? lr * weightDecay : 0,
            gradientOffset: offset,
          };
          const [p1, m1, v1] = tf
            .engine()
            .runKernel(FUSED_KERNELS.adamW, { param, m, v, g: all }, { ...update }) as tf.Tensor[];
          param.assign(p1 as tf.Tensor);
          m.assign(m1 as tf.Tensor);
          v.assign(v1 as tf.Tensor);
          return;
        }
        const g = tf.reshape(tf.slice(all, offset, param.size), param.shape);
        m.assign(tf.add(tf.mul(m, c.beta1), tf.mul(g, c.oneMinusBeta1)));
        v.assign(tf.add(tf.mul(v, c.beta2), tf.mul(tf.square(g), c.oneMinusBeta2)));
        const update = tf.div(tf.div(m, c.correction1), tf.add(tf.sqrt(tf.div(v, c.correction2)), c.epsilon));
        param.assign(tf.sub(decayed ? tf.mul(param, c.kept) : param, tf.mul(update, c.lr)));
      });
    }
    tf.dispose([all, ...Object.values(c ?? {})]);
  }

  /** Moment values by `m.<name>` / `v.<name>`, for checkpoints (read asynchronously: webgpu has no sync read). */
  async state(): Promise<Map<string, Float32Array>> {
    const entries = [...this.moments].flatMap(([name, { m, v }]) => [
      [`m.${name}`, m] as const,
      [`v.${name}`, v] as const,
    ]);
    const values = await Promise.all(entries.map(([, moment]) => moment.data()));
    return new Map(entries.map(([key], i) => [key, values[i] as Float32Array]));
  }

  loadState(state: ReadonlyMap<string, Float32Array>, stepCount: number): void {
    for (const [name, { m, v }] of this.moments) {
      const mValues = state.get(`m.${name}`);
      const vValues = state.get(`v.${name}`);
      if (!mValues || !vValues) throw new Error(`optimizer state lacks ${name}`);
      m.assign(tf.tensor(mValues, m.shape));
      v.assign(tf.tensor(vValues, v.shape));
    }
    this.stepCount = stepCount;
  }
}
