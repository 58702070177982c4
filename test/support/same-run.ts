// Comparing two runs' directories: their per-step losses (metrics.jsonl) and final weights (checkpoint/).
// Data parallelism over a different number of ranks sums in another order, so "the same run" means equal
// within 1e-4 (relative for losses, absolute for weights), not bit-identical.
import assert from "node:assert/strict";
import { join } from "node:path";
import { readMetricsLog } from "../../report/metrics-log.js";
import { readSafetensors } from "../../shared/model/safetensors.js";

/** The training loss of every step line in OUT/metrics.jsonl, in order. */
export function stepLosses(out: string): number[] {
  return readMetricsLog(join(out, "metrics.jsonl")).steps.map((line) => line.train_loss ?? NaN);
}

/** Fails unless the live tensors and their bytes at step `to` are those at step `from` (nothing leaks). */
export function assertSteadyMemory(out: string, from: number, to: number): void {
  const { steps } = readMetricsLog(join(out, "metrics.jsonl"));
  const at = (step: number) => steps.find((line) => line.step === step);
  assert.ok(
    at(from)?.tensors !== undefined && at(from)?.tensor_bytes !== undefined,
    "step lines carry tensors",
  );
  assert.equal(at(to)?.tensors, at(from)?.tensors, `tensors at step ${to} vs ${from}`);
  assert.equal(at(to)?.tensor_bytes, at(from)?.tensor_bytes, `tensor bytes at step ${to} vs ${from}`);
}

/** Fails unless `other` made `steps` steps with `reference`'s losses and ends with its weights. */
export async function assertSameRun(reference: string, other: string, steps: number): Promise<void> {
  const expected = stepLosses(reference);
  const actual = stepLosses(other);
  assert.equal(actual.length, steps, `steps in ${other}`);
  actual.forEach((loss, i) => {
    const want = expected[i] ?? NaN;
    assert.ok(Math.abs(loss - want) <= 1e-4 * Math.abs(want), `step ${i + 1}: ${loss} vs ${want} (${other})`);
  });
  const a = (await readSafetensors(join(reference, "checkpoint", "model.safetensors"))).tensors;
  const b = (await readSafetensors(join(other, "checkpoint", "model.safetensors"))).tensors;
  for (const [name, tensor] of a) {
    const values = b.get(name)?.data;
    assert.ok(values, `${name} missing in ${other}`);
    let maxDiff = 0;
    tensor.data.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - (values[i] ?? NaN)))));
    assert.ok(maxDiff <= 1e-4, `${name}: max |Δ| ${maxDiff} (${other})`);
  }
}
