// What metrics cost the training loop: recording one step's figures (every step, on the main thread) and
// collecting the registry for a scrape (once per scrape, between steps), at a small and a large world size.
import { JobMetrics } from "../coordinator/job-metrics.js";
import { stepPhases } from "../coordinator/step-phases.js";
import { ProcessMetrics } from "../shared/metrics/process-metrics.js";
import type { StepRecord } from "../shared/metrics/records.js";
import { createMetricsRegistry } from "../shared/metrics/registry.js";

import { figure, type Emit } from "./figure.js";

function stepRecord(step: number, worldSize: number): StepRecord {
  const phases = stepPhases(
    Array.from({ length: worldSize }, (_, rank) => ({
      data: 0.001,
      forward_backward: 0.2 + rank * 1e-3,
      allreduce: 0.05,
      optimizer: 0.01,
    })),
  );
  return {
    step,
    lr: 1e-3,
    train_loss: 2,
    train_output_loss: 2,
    tokens: 4096,
    loss_tokens: 1024,
    examples: 32,
    grad_norm: 1,
    tokens_per_s: 1e4,
    step_s: 0.3,
    flops: 1e12,
    ...phases,
  };
}

export async function benchMetrics(emit: Emit, worldSizes: readonly number[] = [8, 64]): Promise<void> {
  for (const worldSize of worldSizes) {
    const registry = createMetricsRegistry("bench");
    const metrics = new JobMetrics(
      registry,
      new ProcessMetrics(registry, {
        version: "bench",
        backend: "",
        device: "",
        adapter: "",
        model: "",
        role: "coordinator",
        rank: "",
      }),
    );
    const steps = 2000;
    const records = Array.from({ length: steps }, (_, i) => stepRecord(i + 1, worldSize));
    const started = performance.now();
    for (const record of records) metrics.step(record);
    const recordUs = ((performance.now() - started) * 1000) / steps;
    const collects: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      bytes = (await registry.metrics()).length;
      collects.push(performance.now() - t0);
    }
    collects.sort((a, b) => a - b);
    const collectMs = collects[Math.floor(collects.length / 2)] ?? NaN;
    emit(figure(`metrics/record_step/n${worldSize}`, recordUs, "µs", { world_size: worldSize }));
    emit(
      figure(`metrics/collect/n${worldSize}`, collectMs, "ms", {
        world_size: worldSize,
        exposition_bytes: bytes,
      }),
    );
    registry.clear();
  }
}
