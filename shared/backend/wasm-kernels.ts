// Kernels that training needs and tfjs-backend-wasm lacks. Gather's gradient (the embedding backward)
// is an UnsortedSegmentSum, which wasm does not register; we supply it as a plain loop over the
// wasm heap, which is memory-bound and cheap next to the matmuls.
import * as tf from "@tensorflow/tfjs-core";
import type { DataType, KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";

/** The two BackendWasm methods we use, typed here to avoid importing its internals. */
interface WasmHeapBackend {
  typedArrayFromHeap(tensor: TensorInfo): Float32Array | Int32Array | Uint8Array;
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
}

const unsortedSegmentSum: KernelConfig = {
  kernelName: tf.UnsortedSegmentSum,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
    const { numSegments } = attrs as unknown as { numSegments: number };
    const wasm = backend as unknown as WasmHeapBackend;
    const rowSize = x.shape.slice(1).reduce((a, b) => a * b, 1);
    const out = wasm.makeOutput([numSegments, ...x.shape.slice(1)], x.dtype);
    const sums = wasm.typedArrayFromHeap(out);
    const values = wasm.typedArrayFromHeap(x);
    const ids = wasm.typedArrayFromHeap(segmentIds);
    sums.fill(0);
    for (let row = 0; row < ids.length; row++) {
      const segment = ids[row] ?? -1;
      if (segment < 0 || segment >= numSegments) continue; // TF drops out-of-range ids
      const to = segment * rowSize;
      const from = row * rowSize;
      for (let k = 0; k < rowSize; k++) sums[to + k] = (sums[to + k] ?? 0) + (values[from + k] ?? 0);
    }
    return out;
  },
};

export function registerWasmTrainingKernels(): void {
  if (tf.getKernel(tf.UnsortedSegmentSum, "wasm") === undefined) tf.registerKernel(unsortedSegmentSum);
}
