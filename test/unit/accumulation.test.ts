import assert from "node:assert/strict";
import { test } from "node:test";
import { selectBackend } from "../../shared/backend/select.js";
import { Gpt, initialValues } from "../../shared/model/gpt.js";
import { chunk, makeMicroBatch } from "../../shared/train/batch.js";
import { accumulateGradients } from "../../shared/train/gradients.js";
import { stepNormaliser, type LossReduction } from "../../shared/train/loss.js";
import { StepBufferLayout } from "../../shared/train/step-buffer.js";
import { byteDataset, MICRO_CONFIG, tempDir, writeSyntheticData } from "../support/tiny.js";

await selectBackend("wasm");

const dataset = byteDataset(writeSyntheticData(tempDir("accumulation"), 12), 0.5);
const examples = dataset.examples.slice(0, 8);
const model = new Gpt(MICRO_CONFIG, initialValues(MICRO_CONFIG, 3));
const reference = new Gpt(MICRO_CONFIG, initialValues(MICRO_CONFIG, 4), false);
const layout = new StepBufferLayout(new Map([...model.params].map(([name, p]) => [name, p.shape])));

/** The step's normalised gradient and loss when the 8 examples are split into micro-batches of `sizes`. */
async function stepGradient(reduction: LossReduction, sizes: readonly number[]) {
  const groups: (typeof examples)[] = [];
  let start = 0;
  for (const size of sizes) groups.push(examples.slice(start, (start += size)));
  const batches = groups.map((group) => makeMicroBatch(group, 256));
  const options = { lossReduction: reduction, klWeight: 0.1, neftuneAlpha: 5, seed: 11 };
  const buffer = await accumulateGradients(model, reference, batches, layout, options, 3);
  const totals = layout.readTotals(buffer);
  const normaliser = stepNormaliser(reduction, totals.normaliserShare);
  return {
    gradient: layout.gradients(buffer).map((g) => g / normaliser),
    loss: totals.objective / normaliser,
  };
}

function assertClose(a: Float32Array, b: Float32Array, relative: number): void {
  let maxDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
    maxAbs = Math.max(maxAbs, Math.abs(a[i] ?? 0));
  }
  assert.ok(maxAbs > 0, "gradient is all zeros");
  assert.ok(maxDiff <= relative * maxAbs, `max |Δ| ${maxDiff} vs max |g| ${maxAbs}`);
}

for (const reduction of ["token", "example", "sum"] as const) {
  test(`accumulation - ${reduction}: 4 micro-batches of 2 and uneven 3+3+2 give the update of one batch of 8`, async () => {
    const whole = await stepGradient(reduction, [8]);
    for (const split of [
      [2, 2, 2, 2],
      [3, 3, 2],
    ]) {
      const parts = await stepGradient(reduction, split);
      assert.ok(
        Math.abs(parts.loss - whole.loss) <= 1e-5 * Math.abs(whole.loss),
        `${parts.loss} vs ${whole.loss}`,
      );
      assertClose(parts.gradient, whole.gradient, 1e-5);
    }
  });
}

test("accumulation - the example reduction differs from the token one when lengths differ", async () => {
  // Guards the test above from passing because both reductions collapsed into one.
  const token = await stepGradient("token", [8]);
  const example = await stepGradient("example", [8]);
  assert.notEqual(token.loss.toFixed(6), example.loss.toFixed(6));
});

test("chunk - splits in order with a short last chunk", () => {
  assert.deepEqual(chunk([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
});
