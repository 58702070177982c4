// Kernels that training needs and tfjs-backend-wasm lacks or runs slowly, as plain loops over the wasm heap
// (memory-bound, cheap next to the matmuls):
// - gather's gradient (the embedding backward) is an UnsortedSegmentSum, which wasm does not register;
// - wasm's Slice reads its whole input through readSync, a copy of all of it, for every slice: Unpack and
//   SplitV slice through it, so unstacking a [32, 128, 128] tensor copied 32 × 2 MB (measured: 37 ms,
//   against ~1 ms here). Replaced by slices that read the heap in place.
import * as tf from "@tensorflow/tfjs-core";
import type { DataType, KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { WASM_FUSED_KERNELS } from "./wasm-fused-kernels.js";

/** The two BackendWasm methods we use, typed here to avoid importing its internals. */
interface WasmHeapBackend {
  typedArrayFromHeap(tensor: TensorInfo): Float32Array | Int32Array | Uint8Array;
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
}

/** x[begin : begin + size] as a new tensor: runs of the innermost axis copied from the heap in place. */
function sliceOnHeap(
  wasm: WasmHeapBackend,
  x: TensorInfo,
  begin: readonly number[],
  size: readonly number[],
): TensorInfo {
  const out = wasm.makeOutput([...size], x.dtype);
  const from = wasm.typedArrayFromHeap(x);
  const to = wasm.typedArrayFromHeap(out);
  const rank = x.shape.length;
  const strides = tf.util.computeStrides(x.shape);
  const run = size[rank - 1] ?? 1; // contiguous elements per copy
  const runs = to.length / Math.max(1, run);
  const index = new Array<number>(Math.max(0, rank - 1)).fill(0); // position among the outer axes
  for (let r = 0; r < runs; r++) {
    let offset = begin[rank - 1] ?? 0;
    for (let axis = 0; axis < rank - 1; axis++)
      offset += ((begin[axis] ?? 0) + (index[axis] ?? 0)) * (strides[axis] ?? 0);
    to.set(from.subarray(offset, offset + run), r * run);
    for (let axis = rank - 2; axis >= 0; axis--) {
      index[axis] = (index[axis] ?? 0) + 1;
      if ((index[axis] ?? 0) < (size[axis] ?? 1)) break;
      index[axis] = 0;
    }
  }
  return out;
}

const slice: KernelConfig = {
  kernelName: tf.Slice,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { x } = inputs as { x: TensorInfo };
    const { begin, size } = attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [from, extent] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size) as [
      number[],
      number[],
    ];
    return sliceOnHeap(backend as unknown as WasmHeapBackend, x, from, extent);
  },
};

const unpack: KernelConfig = {
  kernelName: tf.Unpack,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { value } = inputs as { value: TensorInfo };
    const rank = value.shape.length;
    const axis = ((attrs as unknown as { axis: number }).axis + rank) % rank;
    const size = [...value.shape];
    size[axis] = 1;
    const outShape = value.shape.filter((_, i) => i !== axis);
    return Array.from({ length: value.shape[axis] ?? 0 }, (_, i) => {
      const begin = value.shape.map((_, a) => (a === axis ? i : 0));
      const part = sliceOnHeap(backend as unknown as WasmHeapBackend, value, begin, size);
      return { ...part, shape: outShape };
    });
  },
};

const splitV: KernelConfig = {
  kernelName: tf.SplitV,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { x } = inputs as { x: TensorInfo };
    const { numOrSizeSplits, axis } = attrs as unknown as {
      numOrSizeSplits: number | number[];
      axis: number;
    };
    const along = tf.util.parseAxisParam(axis, x.shape)[0] ?? 0;
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, along);
    const begin = x.shape.map(() => 0);
    return sizes.map((s) => {
      const size = [...x.shape];
      size[along] = s;
      const part = sliceOnHeap(backend as unknown as WasmHeapBackend, x, begin, size);
      begin[along] = (begin[along] ?? 0) + s;
      return part;
    });
  },
};

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

/** Registers ours, replacing wasm's own where it has one (idempotent). */
export function registerWasmTrainingKernels(): void {
  for (const kernel of [unsortedSegmentSum, slice, unpack, splitV, ...WASM_FUSED_KERNELS]) {
    if (tf.getKernel(kernel.kernelName, "wasm")?.kernelFunc === kernel.kernelFunc) continue;
    if (tf.getKernel(kernel.kernelName, "wasm") !== undefined) tf.unregisterKernel(kernel.kernelName, "wasm");
    tf.registerKernel(kernel);
  }
}
