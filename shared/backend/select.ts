// Compute backend selection. The TensorFlow (native) packages are optional peer dependencies: they need
// libtensorflow at install time, which a cluster image has and a laptop may not. `auto` takes the first
// that loads, in the order below, and reports what it skipped and why.
import * as tf from "@tensorflow/tfjs-core";
// tfjs-core alone registers no gradients, and its per-op gradient modules cannot load under Node's ESM
// resolver; the umbrella package's bundle registers them all into tfjs's global registry.
import "@tensorflow/tfjs";
import { BackendError } from "../errors.js";
import { registerWasmTrainingKernels } from "./wasm-kernels.js";

export const BACKEND_NAMES = ["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
type ConcreteBackend = Exclude<BackendName, "auto">;

interface Candidate {
  readonly packageName: string;
  /** The name the package registers with tfjs-core. */
  readonly tfName: string;
}

const CANDIDATES: Record<ConcreteBackend, Candidate> = {
  "tensorflow-gpu": { packageName: "@tensorflow/tfjs-node-gpu", tfName: "tensorflow" },
  tensorflow: { packageName: "@tensorflow/tfjs-node", tfName: "tensorflow" },
  wasm: { packageName: "@tensorflow/tfjs-backend-wasm", tfName: "wasm" },
  cpu: { packageName: "@tensorflow/tfjs-backend-cpu", tfName: "cpu" },
};
const AUTO_ORDER: readonly ConcreteBackend[] = ["tensorflow-gpu", "tensorflow", "wasm", "cpu"];

export interface SelectedBackend {
  readonly name: ConcreteBackend;
  /** Why each earlier candidate of `auto` was skipped. */
  readonly skipped: readonly string[];
}

async function activate(name: ConcreteBackend): Promise<void> {
  const { packageName, tfName } = CANDIDATES[name];
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
}

export interface SelectOptions {
  /** False on a CPU worker: `auto` then skips tensorflow-gpu. */
  readonly allowGpu?: boolean;
}

export async function selectBackend(
  requested: BackendName,
  options: SelectOptions = {},
): Promise<SelectedBackend> {
  if (requested !== "auto") {
    await activate(requested);
    return { name: requested, skipped: [] };
  }
  const skipped: string[] = [];
  for (const name of AUTO_ORDER) {
    if (name === "tensorflow-gpu" && options.allowGpu === false) continue;
    try {
      await activate(name);
      return { name, skipped };
    } catch (error) {
      if (!(error instanceof BackendError)) throw error;
      skipped.push(error.message);
    }
  }
  throw new BackendError("auto", `no backend could be loaded:\n  ${skipped.join("\n  ")}`);
}

/** True where transposed matMul is as fast as plain matMul; false on wasm, where it leaves XNNPACK. */
export function hasFastTransposedMatMul(): boolean {
  return tf.getBackend() !== "wasm";
}
