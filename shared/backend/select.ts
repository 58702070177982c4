// Compute backend selection: one function maps (--backend, --device) to a running backend or one error
// that names each backend tried and why it failed, never a silent fallback. The TensorFlow (native)
// packages are optional peer dependencies (their install downloads libtensorflow); webgpu's two packages
// are optional dependencies.
//
//   device        auto tries                  explicit backends allowed
//   cpu           tensorflow, wasm, cpu       tensorflow, wasm, cpu
//   gpu:K         tensorflow-gpu, webgpu      tensorflow-gpu, webgpu
//   gpu:software  webgpu (software adapter)   webgpu
import * as tf from "@tensorflow/tfjs-core";
// tfjs-core alone registers no gradients, and its per-op gradient modules cannot load under Node's ESM
// resolver; the umbrella package's bundle registers them all into tfjs's global registry.
import "@tensorflow/tfjs";
import { BackendError } from "../errors.js";
import { CPU_DEVICE, formatDevice, type Device } from "./device.js";
import { registerWasmTrainingKernels } from "./wasm-kernels.js";
import { describeAdapter, type AdapterReport } from "./adapter.js";
import { activateWebGpu, throwIfWebGpuFailed } from "./webgpu.js";

export const BACKEND_NAMES = ["auto", "tensorflow-gpu", "webgpu", "tensorflow", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type ConcreteBackend = Exclude<BackendName, "auto">;

const GPU_BACKENDS: readonly ConcreteBackend[] = ["tensorflow-gpu", "webgpu"];
const CPU_BACKENDS: readonly ConcreteBackend[] = ["tensorflow", "wasm", "cpu"];

/** The package each tfjs-registered backend comes from, and the name it registers under. */
const PACKAGES: Record<Exclude<ConcreteBackend, "webgpu">, { packageName: string; tfName: string }> = {
  "tensorflow-gpu": { packageName: "@tensorflow/tfjs-node-gpu", tfName: "tensorflow" },
  tensorflow: { packageName: "@tensorflow/tfjs-node", tfName: "tensorflow" },
  wasm: { packageName: "@tensorflow/tfjs-backend-wasm", tfName: "wasm" },
  cpu: { packageName: "@tensorflow/tfjs-backend-cpu", tfName: "cpu" },
};

export interface SelectedBackend {
  readonly name: ConcreteBackend;
  /** As --device names it: cpu, gpu:K, gpu:software. */
  readonly device: string;
  /** webgpu's adapter. */
  readonly adapter: AdapterReport | undefined;
  /** Why each earlier candidate of `auto` was skipped. */
  readonly skipped: readonly string[];
}

/** One line for logs: "backend webgpu on gpu:software, adapter …". */
export function describeBackend(selected: SelectedBackend): string {
  const skipped = selected.skipped.length ? ` (skipped: ${selected.skipped.join("; ")})` : "";
  const adapter = selected.adapter ? `, ${describeAdapter(selected.adapter)}` : "";
  return `backend ${selected.name} on ${selected.device}${adapter}${skipped}`;
}

async function activatePackage(name: Exclude<ConcreteBackend, "webgpu">, device: Device): Promise<void> {
  const { packageName, tfName } = PACKAGES[name];
  // Read by libtensorflow when it loads: the process then sees GPU K as its only GPU.
  if (name === "tensorflow-gpu" && device.kind === "gpu")
    process.env["CUDA_VISIBLE_DEVICES"] = String(device.index);
  try {
    await import(packageName);
  } catch (error) {
    const missing = (error as { code?: string }).code === "ERR_MODULE_NOT_FOUND";
    throw new BackendError(
      name,
      missing
        ? `${packageName} is not installed (npm install ${packageName}@${tf.version_core})`
        : `${packageName} failed to load: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (tf.findBackendFactory(tfName) === null) {
    throw new BackendError(
      name,
      `${packageName} loaded but registered with another copy of @tensorflow/tfjs-core; ` +
        `install the version matching tfjs-core ${tf.version_core}`,
    );
  }
  if (!(await tf.setBackend(tfName))) throw new BackendError(name, `tfjs could not initialise "${tfName}"`);
  await tf.ready();
  if (name === "wasm") registerWasmTrainingKernels();
  if (name === "tensorflow-gpu") await requireTensorflowGpu();
}

/** tfjs-node-gpu runs on the CPU when libtensorflow finds no usable GPU: that must be an error here. */
async function requireTensorflowGpu(): Promise<void> {
  const backend = tf.backend() as { isUsingGpuDevice?: boolean };
  if (backend.isUsingGpuDevice === false)
    throw new BackendError("tensorflow-gpu", "libtensorflow found no usable GPU (it would run on the CPU)");
}

async function activate(name: ConcreteBackend, device: Device): Promise<AdapterReport | undefined> {
  if (name === "webgpu") return activateWebGpu(device);
  await activatePackage(name, device);
  return undefined;
}

/** Why backend `name` cannot run on `device`, or undefined if it can (auto can run anywhere). */
export function backendDeviceMismatch(name: BackendName, device: Device): string | undefined {
  if (name === "auto") return undefined;
  const where = formatDevice(device);
  if (device.kind === "cpu" && GPU_BACKENDS.includes(name))
    return `needs a GPU device: use --device gpu:K${name === "webgpu" ? " (or gpu:software)" : ""}`;
  if (device.kind === "gpu" && CPU_BACKENDS.includes(name))
    return `a CPU backend, and --device ${where} asks for a GPU: use --backend tensorflow-gpu, webgpu or auto`;
  if (device.kind === "gpu-software" && name !== "webgpu")
    return "not webgpu, and --device gpu:software is a software WebGPU adapter: use --backend webgpu or auto";
  return undefined;
}

function candidates(device: Device): readonly ConcreteBackend[] {
  if (device.kind === "cpu") return CPU_BACKENDS;
  if (device.kind === "gpu") return GPU_BACKENDS;
  return ["webgpu"];
}

export async function selectBackend(
  requested: BackendName,
  device: Device = CPU_DEVICE,
): Promise<SelectedBackend> {
  const where = formatDevice(device);
  if (requested !== "auto") {
    const reason = backendDeviceMismatch(requested, device);
    if (reason !== undefined) throw new BackendError(requested, reason);
    const adapter = await activate(requested, device);
    return { name: requested, device: where, adapter, skipped: [] };
  }
  const skipped: string[] = [];
  for (const name of candidates(device)) {
    try {
      const adapter = await activate(name, device);
      return { name, device: where, adapter, skipped };
    } catch (error) {
      if (!(error instanceof BackendError)) throw error;
      skipped.push(error.message);
    }
  }
  throw new BackendError("auto", `no backend runs on --device ${where}: ${skipped.join("; ")}`);
}

/**
 * Throws the backend's first asynchronous failure (a GPU validation error, a lost device): webgpu reports
 * them as events, and its results are zeros meanwhile. Called once a step's results are read.
 */
export function throwIfBackendFailed(): void {
  if (tf.getBackend() === "webgpu") throwIfWebGpuFailed();
}

/** False on webgpu: under Node it reads GPU data only asynchronously (its dataSync needs OffscreenCanvas). */
export function hasSynchronousReads(): boolean {
  return tf.getBackend() !== "webgpu";
}

/** True where transposed matMul is as fast as plain matMul; false on wasm, where it leaves XNNPACK. */
export function hasFastTransposedMatMul(): boolean {
  return tf.getBackend() !== "wasm";
}

/**
 * True where a batched (rank-3) matMul is as fast as 2-D ones; false on wasm, whose BatchMatMul runs
 * XNNPACK only for a batch of 1 (measured: 2 GFLOP/s for attention's [32,128,128]@[32,128,32], against
 * 28 for a 2-D [1024,128]@[128,512]).
 */
export function hasFastBatchedMatMul(): boolean {
  return tf.getBackend() !== "wasm";
}
