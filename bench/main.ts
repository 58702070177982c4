// npm run bench: what it measures and its flags are in USAGE below (`--help` prints it).
import { reportAndExit } from "../cli/exit-on-error.js";
import { parseBenchArgs } from "./args.js";
import { parseDevice } from "../shared/backend/device.js";
import { unregisterFusedKernels } from "../shared/backend/fused-kernels.js";
import { describeBackend, selectBackend, type BackendName } from "../shared/backend/select.js";
import { matmulParameterCount, trainingFlops } from "../shared/metrics/flops.js";
import { measureMatMulFlops } from "../shared/metrics/peak-flops.js";
import { OptionError } from "../shared/errors.js";
import { benchMetrics } from "./metrics.js";
import { benchPeakMemory } from "./memory.js";
import { benchModelConfig, benchStep } from "./train-step-setup.js";
import { benchScaling } from "./scaling.js";
import { benchStepProfile } from "./step-profile.js";
import { emitLine, figure } from "./figure.js";
import type { GptConfig } from "../shared/model/config.js";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  benchAllReduce,
  parseByteSizes,
  parsePlanes,
  parseWireDtypes,
  parseWorldSizes,
} from "./allreduce.js";

// A bad flag (an OptionError) is one line naming it, as in the CLI; anything else is a bug with its trace.
process.on("uncaughtException", reportAndExit);

const USAGE = `
npm run bench: one JSON line per figure, {name, value, unit, ceiling, ratio, …} (bench/figure.ts):
  matmul/<n>/<backend>          the backend's own 2-D matMul GFLOP/s: the ceiling of the model's matmuls
  train_step/<model>/<backend>  GFLOP/s of a full optimizer step (forward, masked loss, backward, AdamW),
                                against the matmul ceiling; tokens/s in its details
  kernels/<model>/<backend>     kernels dispatched per step, and the costliest by time
  host_copies/<model>/<backend> uploads to and downloads from the backend's memory per step
  train_step_vs_torch/<model>   tokens/s against PyTorch's CPU step on the same shape and thread count,
                                where python3 has torch (bench/torch_step.py)
  memory/<model>                tfjs's peak tensor bytes over one step of --memory-model (default gpt2) at
                                --memory-batch × --memory-seq (1 × 1024), 50,257-token vocabulary,
                                against the theoretical minimum (bench/memory.ts); --memory-model "" skips
  metrics/…                     what recording a step and collecting a scrape cost, at 8 and 64 ranks
  tcp_loopback, allreduce/<plane>/n<N>/<bytes>[/<dtype>]   one loopback TCP stream (the ceiling), then
                                the ring all-reduce per data plane, wire format, world size and size, ranks
                                as processes; busbw counts the fp32 gradient's bytes, bound_seconds is the
                                ring's bandwidth bound (what each link sends ÷ the TCP stream's rate)
  tcp_loopback_pair             (with N = 2) two processes each sending 64 MiB to the other at once: a
                                2-rank ring's traffic over sockets alone, what this machine's cores allow
  scaling_2v1, dist_overhead    launch --workers 2 against 1, and 1 against train (bench/scaling.ts)
Flags: --backend NAME (default auto), --device cpu|gpu:K|gpu:software (default cpu), --models
tiny,small,medium,d128 (presets, and d128 = d128 L2 H4; "" skips train_step), --seq 128, --batch 8,
--vocab 257 (GPT-2's is 50257), --skip-matmul, --allreduce-sizes 1KB..64MB (×4 steps, or a list; gpt2 is
GPT-2 124M's gradient, 498 MB), --allreduce-dtypes fp32 (a list of fp32, bf16, fp16),
--allreduce-iterations 20 (fewer for big sizes), --world-sizes 2,3,4, --planes nats,ws,
--allreduce-nats auto|embedded, --skip-allreduce, --skip-metrics, --skip-scaling, --skip-torch,
--composite-ops (tfjs's composite ops in place of imtrain's fused kernels, to A/B them on a new machine;
for this process's figures: the scaling runs are imtrain processes of their own, with the fused kernels),
and --quick (the same code on small sizes, for CI: tiny only, 1 KB..256 KB, N=2, a 6-step scaling run).
`;

const args = parseBenchArgs(
  {
    backend: { type: "string", default: "auto" },
    device: { type: "string", default: "cpu" },
    models: { type: "string", default: "tiny,small,medium,d128" },
    seq: { type: "string", default: "128" },
    batch: { type: "string", default: "8" },
    "allreduce-sizes": { type: "string", default: "1KB..64MB" },
    "allreduce-iterations": { type: "string", default: "20" },
    "world-sizes": { type: "string", default: "2,3,4" },
    planes: { type: "string", default: "nats,ws" },
    "allreduce-dtypes": { type: "string", default: "fp32" },
    "allreduce-nats": { type: "string", default: "auto" },
    "skip-allreduce": { type: "boolean", default: false },
    "skip-metrics": { type: "boolean", default: false },
    "skip-matmul": { type: "boolean", default: false },
    "skip-scaling": { type: "boolean", default: false },
    "skip-torch": { type: "boolean", default: false },
    "composite-ops": { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
    vocab: { type: "string", default: "257" },
    "memory-model": { type: "string", default: "gpt2" },
    "memory-batch": { type: "string", default: "1" },
    "memory-seq": { type: "string", default: "1024" },
  },
  USAGE,
);
// --quick: the same code on small sizes (CI runs it), unless a flag says otherwise.
if (args.quick) {
  const given = new Set(process.argv.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=")[0]));
  const quick: Partial<Record<keyof typeof args, string>> = {
    models: "tiny",
    seq: "32",
    batch: "2",
    "allreduce-sizes": "1KB..256KB",
    "allreduce-iterations": "3",
    "world-sizes": "2",
    "memory-model": "tiny",
    "memory-seq": "64",
  };
  for (const [flag, value] of Object.entries(quick))
    if (!given.has(flag)) Object.assign(args, { [flag]: value });
}

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
  dtypes: parseWireDtypes("allreduce-dtypes", args["allreduce-dtypes"] ?? ""),
  iterations: positiveInteger("allreduce-iterations"),
  nats: args["allreduce-nats"] === "embedded" ? ("embedded" as const) : ("auto" as const),
};
if (!["auto", "embedded"].includes(args["allreduce-nats"] ?? ""))
  throw new OptionError("allreduce-nats", `"${args["allreduce-nats"]}" is not auto or embedded`);
const models = (args.models ?? "").split(",").filter(Boolean);
for (const model of models) benchModelConfig(model, stepShape.vocab); // an unknown name fails here

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** Steps timed for train_step, after the warm-ups, in a full run and in --quick. */
const STEP_REPEATS = { full: 10, quick: 3 } as const;
const STEP_WARMUPS = { full: 3, quick: 1 } as const;
const mode = args.quick ? "quick" : "full";

/**
 * The median of `repeats` timed runs after `warmups` untimed ones: kernels compiled, memory allocated, and
 * V8's optimising compiler through the JavaScript kernels (1 warm-up and 3 timed steps read 5–25% slower
 * than a long run's steady state).
 */
async function timeSeconds(run: () => Promise<void>, repeats: number, warmups: number): Promise<number> {
  for (let i = 0; i < warmups; i++) await run();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await run();
    times.push((performance.now() - start) / 1000);
  }
  return median(times);
}

/** The best 2-D matmul GFLOP/s over the sizes measured: the ceiling of a training step. */
async function benchMatMul(backend: string, sizes: readonly number[]): Promise<number> {
  let best = 0;
  for (const n of sizes) {
    // The same measurement a CPU rank uses as its peak for MFU (shared/metrics/peak-flops.ts).
    const gflops = (await measureMatMulFlops(n, 5)) / 1e9;
    best = Math.max(best, gflops);
    emitLine(figure(`matmul/${n}/${backend}`, gflops, "GFLOP/s", { backend, m: n, n, k: n }));
  }
  return best;
}

interface StepFigure {
  readonly tokensPerSecond: number;
  readonly config: GptConfig;
}

async function benchTrainStep(backend: string, model: string, ceilingGflops: number): Promise<StepFigure> {
  const { batch, seq, vocab } = stepShape;
  const step = benchStep(benchModelConfig(model, vocab), batch, seq);
  const { config, params } = step;
  const seconds = await timeSeconds(() => step.run(), STEP_REPEATS[mode], STEP_WARMUPS[mode]);
  await benchStepProfile(emitLine, step, model, backend);
  const tokens = batch * seq;
  const gflops = trainingFlops(config, matmulParameterCount(config), tokens, seq) / seconds / 1e9;
  const shape = {
    backend,
    device: args.device,
    model,
    params,
    batch,
    seq,
    vocab,
    d: config.embedDim,
    layers: config.layers,
    heads: config.heads,
  };
  emitLine(
    figure(
      `train_step/${model}/${backend}`,
      gflops,
      "GFLOP/s",
      { ...shape, seconds, tokens_per_s: tokens / seconds },
      ceilingGflops,
    ),
  );
  step.dispose();
  return { tokensPerSecond: tokens / seconds, config };
}

/**
 * PyTorch's tokens/s on the same shape with one thread (wasm runs on one), from the first Python with torch:
 * $IMTRAIN_PYTHON, python3 on the PATH, then the system's (Debian's python3-torch).
 */
function torchTokensPerSecond(config: GptConfig): { tokens_per_s: number; torch: string } | string {
  const script = fileURLToPath(new URL("../../bench/torch_step.py", import.meta.url));
  const { embedDim, layers, heads } = config;
  const shape = [embedDim, layers, heads, stepShape.seq, stepShape.batch, stepShape.vocab, 1].map(String);
  const pythons = [process.env["IMTRAIN_PYTHON"], "python3", "/usr/bin/python3"].filter(
    (p) => p !== undefined,
  );
  const failures: string[] = [];
  for (const python of pythons) {
    const result = spawnSync(python, [script, ...shape], { encoding: "utf8", timeout: 600_000 });
    const why =
      result.error?.message ?? (result.status !== 0 ? result.stderr.trim().split("\n").pop() : undefined);
    if (why === undefined)
      return JSON.parse(result.stdout.trim().split("\n").pop() ?? "{}") as {
        tokens_per_s: number;
        torch: string;
      };
    failures.push(`${python}: ${why}`);
  }
  return failures.join("; ");
}

const selected = await selectBackend(args.backend as BackendName, parseDevice(args.device ?? "cpu"));
process.stderr.write(`bench: ${describeBackend(selected)}\n`);
if (args["composite-ops"]) {
  const removed = unregisterFusedKernels();
  process.stderr.write(`bench: composite ops in place of ${removed.length} fused kernels\n`);
}
const backend = selected.name;
const ceiling = args["skip-matmul"]
  ? undefined
  : await benchMatMul(backend, args.quick ? [256] : [256, 512, 1024]);
for (const model of models) {
  const step = await benchTrainStep(backend, model, ceiling ?? NaN);
  if (args["skip-torch"]) continue;
  const torch = torchTokensPerSecond(step.config);
  if (typeof torch === "string")
    process.stderr.write(`bench: no PyTorch comparison for ${model}: ${torch}\n`);
  else
    emitLine(
      figure(
        `train_step_vs_torch/${model}`,
        step.tokensPerSecond,
        "tokens/s",
        { backend, torch: torch.torch, threads: 1, batch: stepShape.batch, seq: stepShape.seq },
        torch.tokens_per_s,
      ),
    );
}
if (args["memory-model"])
  await benchPeakMemory(
    emitLine,
    backend,
    args["memory-model"],
    positiveInteger("memory-batch"),
    positiveInteger("memory-seq"),
    50_257,
  );
if (!args["skip-metrics"]) await benchMetrics(emitLine);
if (!args["skip-allreduce"]) await benchAllReduce(emitLine, allReduceOptions);
if (!args["skip-scaling"]) {
  const shape = args.quick
    ? { embedDim: 32, layers: 1, heads: 2, seq: 64, batch: 4, steps: 6 }
    : { embedDim: 128, layers: 2, heads: 4, seq: 128, batch: 16, steps: 40 };
  await benchScaling(emitLine, shape);
}
