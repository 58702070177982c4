// A rank's peak FLOP/s, the denominator of MFU. In order: the user's --peak-tflops; a table of known GPUs
// (dense float32-input matmul peaks from the vendors' data sheets: TF32 tensor cores on Ampere and later,
// which TensorFlow uses for float32 matmuls by default since 2.4; plain FP32 before Ampere); else this
// backend's own 2-D matmul ceiling, measured here, which is what a CPU (wasm) rank can reach at best.
import { execFileSync } from "node:child_process";
import * as tf from "@tensorflow/tfjs-core";

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

/** The name of GPU `index` from nvidia-smi, or undefined where there is none (a CPU node, a container without it). */
export function nvidiaGpuName(index: number): string | undefined {
  try {
    const out = execFileSync(
      "nvidia-smi",
      ["--query-gpu=name", "--format=csv,noheader", "-i", String(index)],
      { encoding: "utf8", timeout: 10_000, stdio: ["ignore", "pipe", "ignore"] },
    );
    return out.trim().split("\n")[0] || undefined;
  } catch {
    return undefined;
  }
}

/** Best of a few n×n×n float32 matmuls on the active backend, in FLOP/s (~0.2 s on 2 wasm cores). */
export async function measureMatMulFlops(n = 768, repeats = 3): Promise<number> {
  const a = tf.randomNormal([n, n], 0, 1, "float32", 1);
  const b = tf.randomNormal([n, n], 0, 1, "float32", 2);
  let best = Infinity;
  try {
    for (let i = 0; i <= repeats; i++) {
      const started = performance.now();
      const product = tf.matMul(a, b);
      await product.data(); // wait for the device, outside tidy (see README's wasm notes); webgpu reads only asynchronously
      product.dispose();
      // The first run compiles kernels and allocates: not a measurement.
      if (i > 0) best = Math.min(best, (performance.now() - started) / 1000);
    }
  } finally {
    a.dispose();
    b.dispose();
  }
  return (2 * n ** 3) / best;
}

/** Resolves the peak for a rank on `device` ("cpu", "gpu:K" or "gpu:software") with the active backend. */
export async function resolvePeakFlops(peakTflops: number | undefined, device: string): Promise<PeakFlops> {
  if (peakTflops !== undefined)
    return { flopsPerSecond: peakTflops * 1e12, source: "flag", of: "--peak-tflops" };
  const gpu = /^gpu:(\d+)$/.exec(device);
  const name = gpu ? nvidiaGpuName(Number(gpu[1])) : undefined;
  const tflops = name === undefined ? undefined : tableTflops(name);
  if (name !== undefined && tflops !== undefined)
    return { flopsPerSecond: tflops * 1e12, source: "table", of: name };
  return {
    flopsPerSecond: await measureMatMulFlops(),
    source: "measured",
    of: `${tf.getBackend()} 2-D matmul`,
  };
}
