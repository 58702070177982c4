import assert from "node:assert/strict";
import { test } from "node:test";
import { JobMetrics, type JobFacts } from "../../coordinator/job-metrics.js";
import { ProcessMetrics } from "../../shared/metrics/process-metrics.js";
import { createMetricsRegistry } from "../../shared/metrics/registry.js";

const FACTS: JobFacts = {
  plannedSteps: 100,
  completedSteps: 0,
  workersExpected: 3,
  promptLossWeight: 1,
  templateLossWeight: 0,
  instructionOutputRatio: 9.5,
  truncatedTokens: 12,
  droppedExamples: 1,
  checkpointEverySteps: 10,
  checkpointEverySeconds: 600,
  heldOutExamples: 50,
};

function jobMetrics(facts: Partial<JobFacts> = {}) {
  const registry = createMetricsRegistry("unit");
  const process = new ProcessMetrics(registry, {
    version: "0",
    backend: "wasm",
    device: "cpu",
    adapter: "",
    model: "tiny",
    role: "coordinator",
    rank: "",
  });
  const metrics = new JobMetrics(registry, process);
  metrics.start({ ...FACTS, ...facts });
  /** The value of one series, or undefined when it is not exported. */
  const value = async (name: string, labels: Record<string, string> = {}) => {
    const metric = await registry.getSingleMetric(name)?.get();
    const series = metric?.values.find((v) =>
      Object.entries(labels).every(([key, want]) => String(v.labels[key]) === want),
    );
    return series?.value;
  };
  return { metrics, value };
}

function evalAt(step: number, gap: number, heldOut = 2 + gap) {
  return { step, eval_output_loss: heldOut, train_eval_output_loss: 2, overfitting_gap: gap, eval_s: 0.5 };
}

test("job metrics - gap rises count consecutive evals with a larger gap, and reset on a fall", async () => {
  const { metrics, value } = jobMetrics();
  const rises: (number | undefined)[] = [];
  for (const [i, gap] of [0.1, 0.2, 0.3, 0.25, 0.3].entries()) {
    metrics.eval(evalAt(10 * (i + 1), gap));
    rises.push(await value("imtrain_overfitting_gap_rises"));
  }
  assert.deepEqual(rises, [0, 1, 2, 0, 1]);
  assert.equal(await value("imtrain_overfitting_gap"), 0.3);
  assert.equal(await value("imtrain_output_loss", { split: "held_out" }), 2.3);
  assert.equal(await value("imtrain_output_loss", { split: "train_subset" }), 2);
});

test("job metrics - without held-out data no held-out loss or gap is exported (its NaN is not divergence)", async () => {
  const { metrics, value } = jobMetrics({ heldOutExamples: 0 });
  metrics.eval(evalAt(10, NaN, NaN));
  assert.equal(await value("imtrain_output_loss", { split: "held_out" }), undefined);
  assert.equal(await value("imtrain_overfitting_gap"), undefined);
  assert.equal(await value("imtrain_output_loss", { split: "train_subset" }), 2);
});

test("job metrics - a checkpoint is charged to every rank, and its step and age reset", async () => {
  const { metrics, value } = jobMetrics();
  metrics.checkpoint({ step: 10, checkpoint_s: 4, rank: 0 });
  for (const rank of ["0", "1", "2"])
    assert.equal(await value("imtrain_step_phase_seconds", { rank, phase: "checkpoint", le: "5" }), 1, rank);
  assert.equal(await value("imtrain_last_checkpoint_step"), 10);
  const age = await value("imtrain_checkpoint_age_seconds");
  assert.ok(age !== undefined && age >= 0 && age < 5, `${age}`);
});

test("job metrics - after a recovery a checkpoint is charged to the ranks in the ring, not to 0..N-1", async () => {
  const { metrics, value } = jobMetrics();
  const phases = { data: 0, forward_backward: 0, allreduce: 0, wait: 0, optimizer: 0 };
  metrics.step({
    ...{ step: 11, lr: 1e-3, train_loss: 2, train_output_loss: 2, tokens: 10, loss_tokens: 10, examples: 4 },
    ...{ grad_norm: 1, tokens_per_s: 10, step_s: 1, flops: 1, phase_s: phases },
    ...{ rank_compute_s: [0.5, 0.5], rank_ids: [0, 2] }, // rank 1 was lost
  });
  metrics.checkpoint({ step: 11, checkpoint_s: 4, rank: 0 });
  const charged = async (rank: string) =>
    await value("imtrain_step_phase_seconds", { rank, phase: "checkpoint", le: "5" });
  assert.deepEqual(await Promise.all(["0", "1", "2"].map(charged)), [1, undefined, 1]);
});

test("job metrics - the state is one-hot, and entering running stamps the last-step time", async () => {
  const { metrics, value } = jobMetrics();
  assert.equal(await value("imtrain_job_state", { state: "preparing" }), 1);
  const before = Date.now() / 1000;
  metrics.enter("running");
  const states = await Promise.all(
    ["preparing", "waiting-for-workers", "running", "salvaging", "stopped", "failed"].map((state) =>
      value("imtrain_job_state", { state }),
    ),
  );
  assert.deepEqual(states, [0, 0, 1, 0, 0, 0]);
  const stamp = (await value("imtrain_last_step_timestamp_seconds")) ?? 0;
  assert.ok(stamp >= before - 1 && stamp <= Date.now() / 1000 + 1, `${stamp}`);
});

test("job metrics - a lost worker counts once, and alive follows joined minus lost", async () => {
  const { metrics, value } = jobMetrics();
  metrics.joined(3);
  metrics.lost(1);
  metrics.lost(1); // the same rank reported twice
  assert.equal(await value("imtrain_workers_lost_total"), 1);
  assert.equal(await value("imtrain_workers_alive"), 2);
  assert.equal(await value("imtrain_workers_joined"), 3);
});
