// Where one training step's time and traffic go, per backend, so a GPU machine's figures can be read
// against wasm's: the kernels tfjs dispatches (count, and the costliest by time where the backend times
// them), on webgpu the GPU programs those kernels run (a fused kernel runs one per output), and the copies
// between the host and the backend's memory (uploads through write/move, downloads through read/readSync),
// counted by wrapping the active backend's methods for the step.
import * as tf from "@tensorflow/tfjs-core";
import type { BenchStep } from "./train-step-setup.js";
import { hasFusedKernels } from "../shared/backend/fused-kernels.js";
import { figure, type Emit } from "./figure.js";

interface Traffic {
  uploads: number;
  uploadBytes: number;
  downloads: number;
  downloadBytes: number;
  /** GPU programs dispatched (webgpu's runWebGPUProgram), or null on a backend without them. */
  programs: number | null;
}

type Backend = Record<"write" | "move" | "read" | "readSync", (...args: unknown[]) => unknown> & {
  runWebGPUProgram?: (...args: unknown[]) => unknown;
};

/** Runs `run` with the backend's upload and download methods counted. */
async function countTraffic(run: () => Promise<void>): Promise<Traffic> {
  const backend = tf.backend() as unknown as Backend;
  const runProgram = backend.runWebGPUProgram;
  const traffic: Traffic = {
    uploads: 0,
    uploadBytes: 0,
    downloads: 0,
    downloadBytes: 0,
    programs: runProgram === undefined ? null : 0,
  };
  const originals = {
    write: backend.write,
    move: backend.move,
    read: backend.read,
    readSync: backend.readSync,
    ...(runProgram === undefined ? {} : { runWebGPUProgram: runProgram }),
  };
  const bytesOf = (values: unknown) => (ArrayBuffer.isView(values) ? values.byteLength : 0);
  // A write without values is an allocation (wasm makes every kernel's output so), not a copy.
  const upload = (values: unknown) => {
    if (!ArrayBuffer.isView(values)) return;
    traffic.uploads++;
    traffic.uploadBytes += values.byteLength;
  };
  backend.write = function (values, ...rest) {
    upload(values);
    return originals.write.call(this, values, ...rest);
  };
  backend.move = function (dataId, values, ...rest) {
    upload(values);
    return originals.move.call(this, dataId, values, ...rest);
  };
  const counted = (read: (...args: unknown[]) => unknown) =>
    function (this: unknown, ...args: unknown[]) {
      traffic.downloads++;
      const result = read.apply(this, args);
      if (result instanceof Promise) return result.then((v) => ((traffic.downloadBytes += bytesOf(v)), v));
      traffic.downloadBytes += bytesOf(result);
      return result;
    };
  backend.read = counted(originals.read);
  backend.readSync = counted(originals.readSync);
  if (runProgram !== undefined)
    backend.runWebGPUProgram = function (...args) {
      traffic.programs = (traffic.programs ?? 0) + 1;
      return runProgram.apply(this, args);
    };
  try {
    await run();
  } finally {
    Object.assign(backend, originals);
  }
  return traffic;
}

/** Emits kernels/<model>/<backend> and host_copies/<model>/<backend> for one step of `step`. */
export async function benchStepProfile(
  emit: Emit,
  step: BenchStep,
  model: string,
  backend: string,
): Promise<void> {
  const traffic = await countTraffic(() => step.run());
  const profile = await tf.profile(() => step.run());
  const byKernel = new Map<string, { ms: number; count: number }>();
  for (const kernel of profile.kernels) {
    const entry = byKernel.get(kernel.name) ?? { ms: 0, count: 0 };
    entry.ms += typeof kernel.kernelTimeMs === "number" ? kernel.kernelTimeMs : 0;
    entry.count++;
    byKernel.set(kernel.name, entry);
  }
  const costliest = [...byKernel]
    .sort((a, b) => b[1].ms - a[1].ms || b[1].count - a[1].count)
    .slice(0, 10)
    .map(([name, { ms, count }]) => ({ name, ms: Math.round(ms * 10) / 10, count }));
  const shape = {
    backend,
    model,
    params: step.params,
    layers: step.config.layers,
    d: step.config.embedDim,
    fused_kernels: hasFusedKernels(),
  };
  // Without per-kernel times (webgpu on an adapter without timestamp queries) the list is by count.
  const timed = costliest.some((kernel) => kernel.ms > 0);
  const kernelMs = [...byKernel.values()].reduce((sum, kernel) => sum + kernel.ms, 0);
  emit(
    figure(`kernels/${model}/${backend}`, profile.kernels.length, "kernels per step", {
      ...shape,
      gpu_programs: traffic.programs,
      kernel_ms: timed ? Math.round(kernelMs * 10) / 10 : null,
      costliest_by: timed ? "time" : "count (this backend does not time kernels)",
      costliest,
    }),
  );
  emit(
    figure(`host_copies/${model}/${backend}`, traffic.uploads + traffic.downloads, "copies per step", {
      ...shape,
      uploads: traffic.uploads,
      upload_bytes: traffic.uploadBytes,
      downloads: traffic.downloads,
      download_bytes: traffic.downloadBytes,
    }),
  );
}
