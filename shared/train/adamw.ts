// AdamW (decoupled weight decay, Loshchilov & Hutter) on tfjs variables. Every rank applies it to the
// same all-reduced gradients with the same ops, so ranks stay bit-identical.
import * as tf from "@tensorflow/tfjs-core";
import type { StepBufferLayout } from "./step-buffer.js";
import { variableOf } from "../model/gpt.js";
import { FUSED_KERNELS, hasFusedKernels } from "../backend/wasm-fused-kernels.js";

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

  /** Applies one update from flat gradients already divided by the step's normaliser. */
  apply(layout: StepBufferLayout, gradients: Float32Array, lr: number): void {
    const { beta1, beta2, adamEpsilon, weightDecay } = this.options;
    this.stepCount++;
    const correction1 = 1 - beta1 ** this.stepCount;
    const correction2 = 1 - beta2 ** this.stepCount;
    for (const [name, param] of this.params) {
      const { m, v } = this.moments.get(name) ?? { m: param, v: param };
      // Decay matrices only (weights and embeddings), not biases or LayerNorm gains, as GPT-2 recipes do.
      const decay = param.rank >= 2 ? lr * weightDecay : 0;
      tf.tidy(() => {
        const g = tf.tensor(layout.slice(gradients, name), param.shape);
        if (hasFusedKernels()) {
          const update = { beta1, beta2, epsilon: adamEpsilon, correction1, correction2, lr, decay };
          const [p1, m1, v1] = tf
            .engine()
            .runKernel(FUSED_KERNELS.adamW, { param, m, v, g }, { ...update }) as tf.Tensor[];
          param.assign(p1 as tf.Tensor);
          m.assign(m1 as tf.Tensor);
          v.assign(v1 as tf.Tensor);
          return;
        }
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const update = tf.div(tf.div(m, correction1), tf.add(tf.sqrt(tf.div(v, correction2)), adamEpsilon));
        const decayed = decay > 0 ? tf.mul(param, 1 - decay) : param;
        param.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    }
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
