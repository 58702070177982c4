// A rank's peak FLOP/s, the denominator of MFU. In order: the user's --peak-tflops; a table of known GPUs
// (dense float32-input matmul peaks from the vendors' data sheets: TF32 tensor cores on Ampere and later,
// which TensorFlow uses for float32 matmuls by default since 2.4; plain FP32 before Ampere); else this
// backend's own 2-D matmul ceiling, measured here, which is what a CPU (wasm) rank can reach at best.
import * as tf from "@tensorflow/tfjs-core";
import { nvidiaGpus } from "../backend/nvidia-gpus.js";

export type PeakFlopsSource = "flag" | "table" | "measured";

export interface PeakFlops {
  readonly flopsPerSecond: number;
  readonly source: PeakFlopsSource;
  /** What the figure is of, for logs: "--peak-tflops", a GPU name, or the backend. */
  readonly of: string;
}

/** Dense TFLOP/s by GPU name fragment, most specific first (matched case-insensitively against nvidia-smi's name). */
export const KNOWN_GPU_TFLOPS: readonly (readonly [fragment: string, tflops: number])[] = [
  ["H200", 494.7],
  ["H100 PCIe", 378],
  ["H100", 494.7],
  ["A100", 156],
  ["L40S", 183.2],
  ["L40", 90.5],
  ["L4", 60],
  ["A10G", 35],
  ["A10", 62.5],
  ["V100", 15.7],
  ["T4", 8.1],
];

export function tableTflops(gpuName: string): number | undefined {
  const name = gpuName.toLowerCase();
  return KNOWN_GPU_TFLOPS.find(([fragment]) => name.includes(fragment.toLowerCase()))?.[1];
}

/** n×n×n float32 matmuls on the active backend, in FLOP/s: the best of `rounds` rounds of `repeats` products. */
export async function measureMatMulFlops(n = 768, repeats = 3, rounds = 2): Promise<number> {
  const a = tf.randomNormal([n, n], 0, 1, "float32", 1);
  const b = tf.randomNormal([n, n], 0, 1, "float32", 2);
  try {
    await timeMatMuls(a, b, 1); // compiles kernels and allocates: not a measurement
    let best = Infinity;
    for (let round = 0; round < rounds; round++) best = Math.min(best, await timeMatMuls(a, b, repeats));
    return (2 * n ** 3 * repeats) / best;
  } finally {
    a.dispose();
    b.dispose();
  }
}

/**
 * Seconds for `count` products queued back to back. Only one element of the last is read: a GPU runs its
 * queue in order, and reading a whole product would time the copy to the host, not the matmul. The read is
 * outside any tidy (see README's wasm notes) and asynchronous (webgpu under Node has no synchronous read).
 */
async function timeMatMuls(a: tf.Tensor, b: tf.Tensor, count: number): Promise<number> {
  const started = performance.now();
  const products = Array.from({ length: count }, () => tf.matMul(a, b));
  const corner = tf.slice(products[count - 1] as tf.Tensor, [0, 0], [1, 1]);
  await corner.data();
  const seconds = (performance.now() - started) / 1000;
  tf.dispose([...products, corner]);
  return seconds;
}

export interface MatMulCeiling {
  /** The side of the square matmul measured. */
  readonly n: number;
  readonly flopsPerSecond: number;
}

/**
 * The backend's 2-D matmul ceiling, on a size grown until one product takes `productSeconds` (or `maxN`):
 * big enough to fill a GPU, small enough that tfjs's JavaScript cpu backend still answers in seconds.
 */
export async function measureMatMulCeiling(maxN = 8192, productSeconds = 0.05): Promise<MatMulCeiling> {
  let n = 256;
  for (;;) {
    const flopsPerSecond = await measureMatMulFlops(n, 3, 1);
    if (n * 2 > maxN || (2 * n ** 3) / flopsPerSecond >= productSeconds) return { n, flopsPerSecond };
    n *= 2;
  }
}

/** Resolves the peak for a rank on `device` ("cpu", "gpu:K" or "gpu:software") with the active backend. */
export async function resolvePeakFlops(peakTflops: number | undefined, device: string): Promise<PeakFlops> {
  if (peakTflops !== undefined)
    return { flopsPerSecond: peakTflops * 1e12, source: "flag", of: "--peak-tflops" };
  const gpu = /^gpu:(\d+)$/.exec(device);
  const name = gpu ? nvidiaGpus()[Number(gpu[1])]?.name : undefined;
  const tflops = name === undefined ? undefined : tableTflops(name);
  if (name !== undefined && tflops !== undefined)
    return { flopsPerSecond: tflops * 1e12, source: "table", of: name };
  return {
    flopsPerSecond: await measureMatMulFlops(),
    source: "measured",
    of: `${tf.getBackend()} 2-D matmul`,
  };
}
