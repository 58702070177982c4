// npm run bench: one JSON line per figure.
//   matmul      the backend's own 2-D matMul GFLOP/s (the ceiling the model's matmuls can reach)
//   train_step  tokens/s of a full optimizer step (forward, masked loss, backward, AdamW) per preset
//   metrics     what recording a step's metrics and collecting them for a scrape cost, at 8 and 64 ranks
//   tcp_loopback, allreduce  one loopback TCP stream (the ceiling), then the ring all-reduce per data plane,
//                world size and buffer size, ranks as processes (bench/allreduce.ts)
//   peak_memory tfjs's peak tensor bytes over one step of --memory-model (default gpt2) at
//               --memory-batch × --memory-seq (1 × 1024) with a 50,257-token vocabulary, next to the
//               theoretical minimum (bench/memory.ts); --memory-model "" skips it
// Flags: --backend NAME (default auto), --device cpu|gpu:K|gpu:software (default cpu), --models tiny,small
// (presets; "" skips train_step), --seq 128, --vocab 257 (train_step's vocabulary; GPT-2's is 50257),
// --skip-matmul,
// --batch 8, --allreduce-sizes 1KB..64MB (×4 steps, or a list), --allreduce-iterations 20 (fewer for big
// sizes), --world-sizes 2,3,4, --planes nats,ws, --allreduce-nats auto|embedded, --skip-allreduce, --skip-metrics.
import { parseArgs } from "node:util";
import { parseDevice } from "../shared/backend/device.js";
import { describeBackend, selectBackend, type BackendName } from "../shared/backend/select.js";
import { matmulParameterCount, trainingFlops } from "../shared/metrics/flops.js";
import { measureMatMulFlops } from "../shared/metrics/peak-flops.js";
import { OptionError } from "../shared/errors.js";
import { benchMetrics } from "./metrics.js";
import { benchPeakMemory } from "./memory.js";
import { benchStep } from "./train-step-setup.js";
import { benchAllReduce, parseByteSizes, parsePlanes, parseWorldSizes } from "./allreduce.js";

const { values: args } = parseArgs({
  options: {
    backend: { type: "string", default: "auto" },
    device: { type: "string", default: "cpu" },
    models: { type: "string", default: "tiny,small" },
    seq: { type: "string", default: "128" },
    batch: { type: "string", default: "8" },
    "allreduce-sizes": { type: "string", default: "1KB..64MB" },
    "allreduce-iterations": { type: "string", default: "20" },
    "world-sizes": { type: "string", default: "2,3,4" },
    planes: { type: "string", default: "nats,ws" },
    "allreduce-nats": { type: "string", default: "auto" },
    "skip-allreduce": { type: "boolean", default: false },
    "skip-metrics": { type: "boolean", default: false },
    "skip-matmul": { type: "boolean", default: false },
    vocab: { type: "string", default: "257" },
    "memory-model": { type: "string", default: "gpt2" },
    "memory-batch": { type: "string", default: "1" },
    "memory-seq": { type: "string", default: "1024" },
  },
});

// Flags are checked before any figure is measured, so a typo fails at once.
function positiveInteger(flag: keyof typeof args): number {
  const value = Number(args[flag]);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new OptionError(flag, `"${String(args[flag])}" is not a positive integer`);
  return value;
}
const stepShape = {
  batch: positiveInteger("batch"),
  seq: positiveInteger("seq"),
  vocab: positiveInteger("vocab"),
};
const allReduceOptions = {
  sizesBytes: parseByteSizes("allreduce-sizes", args["allreduce-sizes"] ?? ""),
  worldSizes: parseWorldSizes("world-sizes", args["world-sizes"] ?? ""),
  planes: parsePlanes("planes", args.planes ?? ""),
  iterations: positiveInteger("allreduce-iterations"),
  nats: args["allreduce-nats"] === "embedded" ? ("embedded" as const) : ("auto" as const),
};

if (!["auto", "embedded"].includes(args["allreduce-nats"] ?? ""))
  throw new OptionError("allreduce-nats", `"${args["allreduce-nats"]}" is not auto or embedded`);

function emit(record: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(record) + "\n");
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

async function timeSeconds(run: () => Promise<void>, repeats: number): Promise<number> {
  await run(); // warm-up: kernels compiled, memory allocated
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await run();
    times.push((performance.now() - start) / 1000);
  }
  return median(times);
}

async function benchMatMul(backend: string): Promise<void> {
  for (const n of [256, 512, 1024]) {
    // The same measurement a CPU rank uses as its peak for MFU (shared/metrics/peak-flops.ts).
    const flopsPerSecond = await measureMatMulFlops(n, 5);
    emit({
      bench: "matmul",
      backend,
      m: n,
      n,
      k: n,
      seconds: (2 * n ** 3) / flopsPerSecond,
      gflops: flopsPerSecond / 1e9,
    });
  }
}

async function benchTrainStep(
  backend: string,
  preset: string,
  batchSize: number,
  seq: number,
  vocab: number,
): Promise<void> {
  const step = benchStep(preset, vocab, batchSize, seq);
  const { config, params } = step;
  const seconds = await timeSeconds(() => step.run(), 3);
  const tokens = batchSize * seq;
  const flops = trainingFlops(config, matmulParameterCount(config), tokens, seq);
  emit({
    bench: "train_step",
    backend,
    model: preset,
    device: args.device,
    vocab,
    params,
    batch: batchSize,
    seq,
    seconds,
    tokens_per_s: tokens / seconds,
    gflops: flops / seconds / 1e9,
  });
  step.dispose();
}

const selected = await selectBackend(args.backend as BackendName, parseDevice(args.device ?? "cpu"));
process.stderr.write(`bench: ${describeBackend(selected)}\n`);
if (!args["skip-matmul"]) await benchMatMul(selected.name);
for (const preset of (args.models ?? "").split(",").filter(Boolean)) {
  await benchTrainStep(selected.name, preset, stepShape.batch, stepShape.seq, stepShape.vocab);
}
if (args["memory-model"])
  await benchPeakMemory(
    emit,
    selected.name,
    args["memory-model"],
    Number(args["memory-batch"]),
    Number(args["memory-seq"]),
    50_257,
  );
if (!args["skip-metrics"]) await benchMetrics(emit);
if (!args["skip-allreduce"]) await benchAllReduce(emit, allReduceOptions);
