import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { selectBackend } from "../../shared/backend/select.js";
import type { MicroBatch } from "../../shared/train/batch.js";
import {
  lossRows,
  maskedLoss,
  normaliserShare,
  stepNormaliser,
  type LossReduction,
} from "../../shared/train/loss.js";
import { mulberry32 } from "../../shared/random.js";

await selectBackend("wasm");

// Two examples of 4 predictions each; example 1 has padding at its end.
const V = 5;
const batch: MicroBatch = {
  size: 2,
  length: 4,
  inputs: Int32Array.from([1, 2, 3, 4, 0, 1, 2, 0]),
  targets: Int32Array.from([2, 3, 4, 0, 1, 2, 4, 0]),
  weights: Float32Array.from([0.5, 0.5, 1, 1, 0, 1, 1, 0]),
  outputMask: Float32Array.from([0, 0, 1, 1, 0, 1, 1, 0]),
  inputLengths: Int32Array.from([4, 3]),
  exampleIndices: Int32Array.from([7, 9]),
};
const random = mulberry32(42);
const logitValues = Array.from({ length: batch.size * batch.length * V }, () => 4 * random() - 2);
const refValues = Array.from({ length: batch.size * batch.length * V }, () => 4 * random() - 2);

/** log-softmax of row i, in float64. */
function logSoftmaxRow(values: readonly number[], i: number): number[] {
  const row = values.slice(i * V, (i + 1) * V);
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
  return row.map((x) => x - lse);
}

function plainObjective(reduction: LossReduction, klWeight: number): number {
  let total = 0;
  for (let b = 0; b < batch.size; b++) {
    let exampleSum = 0;
    let exampleWeight = 0;
    for (let t = 0; t < batch.length; t++) {
      const i = b * batch.length + t;
      const w = batch.weights[i] ?? 0;
      const logp = logSoftmaxRow(logitValues, i);
      const logq = logSoftmaxRow(refValues, i);
      const ce = -(logp[batch.targets[i] ?? 0] ?? 0);
      const kl = logp.reduce((a, lp, v) => a + Math.exp(lp) * (lp - (logq[v] ?? 0)), 0);
      exampleSum += w * (ce + klWeight * kl);
      exampleWeight += w;
    }
    total += reduction === "example" ? exampleSum / exampleWeight : exampleSum;
  }
  return total;
}

/** Every position of the 8-position test batch. */
const ALL_ROWS = Int32Array.from({ length: 8 }, (_, i) => i);

for (const reduction of ["token", "example", "sum"] as const) {
  for (const klWeight of [0, 0.3]) {
    test(`masked loss - ${reduction} reduction, KL weight ${klWeight}, equals a plain-JS computation`, () => {
      const logits = tf.tensor2d(logitValues, [8, V]);
      const refLogits = tf.tensor2d(refValues, [8, V]);
      const terms = maskedLoss(logits, batch, ALL_ROWS, reduction, { refLogits, weight: klWeight });
      const normaliser = stepNormaliser(reduction, normaliserShare(reduction, batch));
      const expectedNormaliser = reduction === "token" ? 5 : reduction === "example" ? 2 : 1;
      assert.equal(normaliser, expectedNormaliser);
      const got = (terms.objective.dataSync()[0] ?? NaN) / normaliser;
      const want = plainObjective(reduction, klWeight) / expectedNormaliser;
      assert.ok(Math.abs(got - want) < 1e-5 * Math.max(1, Math.abs(want)), `${got} vs ${want}`);
    });
  }
}

test("masked loss - the gradient for the logits is w·(softmax − one-hot of the target), as in float64", () => {
  const logits = tf.tensor2d(logitValues, [8, V]);
  const objective = (x: tf.Tensor) => maskedLoss(x as tf.Tensor2D, batch, ALL_ROWS, "sum").objective;
  const grad = tf.grad(objective)(logits).dataSync();
  for (let i = 0; i < 8; i++) {
    const probabilities = logSoftmaxRow(logitValues, i).map(Math.exp);
    probabilities.forEach((p, v) => {
      const want = (batch.weights[i] ?? 0) * (p - (v === batch.targets[i] ? 1 : 0));
      const got = grad[i * V + v] ?? NaN;
      assert.ok(Math.abs(got - want) < 1e-6, `d/dlogit[${i}, ${v}] = ${got}, want ${want}`);
    });
  }
  tf.dispose(logits);
});

test("masked loss - KL to an identical reference is zero and has zero gradient", () => {
  const logits = tf.variable(tf.tensor2d(logitValues, [8, V]));
  const { value, grads } = tf.variableGrads(() => {
    const ce = maskedLoss(logits, batch, ALL_ROWS, "token", {
      refLogits: tf.tensor2d(logitValues, [8, V]),
      weight: 1,
    });
    const plain = maskedLoss(logits, batch, ALL_ROWS, "token");
    return tf.sub(ce.objective, plain.objective) as tf.Scalar;
  }, [logits]);
  assert.ok(Math.abs(value.dataSync()[0] ?? 1) < 1e-5);
  const gradient = Object.values(grads)[0]?.dataSync() ?? new Float32Array([1]);
  assert.ok(gradient.every((g) => Math.abs(g) < 1e-5));
});

test("masked loss - padding and zero-weight positions do not move the loss", () => {
  const changed = [...logitValues];
  for (let v = 0; v < V; v++) changed[4 * V + v] = 100 * v; // position 4 has weight 0
  const a = maskedLoss(tf.tensor2d(logitValues, [8, V]), batch, ALL_ROWS, "token").objective.dataSync()[0];
  const b = maskedLoss(tf.tensor2d(changed, [8, V]), batch, ALL_ROWS, "token").objective.dataSync()[0];
  assert.equal(a, b);
});

for (const reduction of ["token", "example", "sum"] as const) {
  test(`masked loss - ${reduction}: computed on the loss rows only, it equals the loss on every position`, () => {
    const rows = lossRows(batch);
    assert.ok(rows.length < 8, "the test batch has positions no loss needs");
    const full = tf.tensor2d(logitValues, [8, V]);
    const picked = tf.gather(full, tf.tensor1d(rows, "int32")) as tf.Tensor2D;
    const refFull = tf.tensor2d(refValues, [8, V]);
    const refPicked = tf.gather(refFull, tf.tensor1d(rows, "int32")) as tf.Tensor2D;
    const a = maskedLoss(full, batch, ALL_ROWS, reduction, { refLogits: refFull, weight: 0.3 });
    const b = maskedLoss(picked, batch, rows, reduction, { refLogits: refPicked, weight: 0.3 });
    const [x, y] = [a.objective.dataSync()[0] ?? NaN, b.objective.dataSync()[0] ?? NaN];
    assert.ok(Math.abs(x - y) < 1e-6 * Math.max(1, Math.abs(x)), `${x} vs ${y}`);
  });
}
