// Kernels that training needs and tfjs-backend-wasm lacks or runs slowly, as plain loops over the wasm heap
// (memory-bound, cheap next to the matmuls):
// - gather's gradient (the embedding backward) is an UnsortedSegmentSum, which wasm does not register;
// - wasm's Slice reads its whole input through readSync, a copy of all of it, for every slice: Unpack and
//   SplitV slice through it, so unstacking a [32, 128, 128] tensor copied 32 × 2 MB (measured: 37 ms,
//   against ~1 ms here). Replaced by slices that read the heap in place;
// - wasm's Transpose of a matrix runs at 6–8 ns an element (the weight gradients' transposes), and its
//   GatherV2 took 5 ms for 1,024 rows of 128 (the embedding lookup, the loss's rows): loops over the heap
//   take 1.8 ms for a [1024, 512] matrix and 0.2 ms for the gather (measured one kernel at a time);
// - wasm's Identity copies: the engine runs it on every tensor a gradient saves.
import * as tf from "@tensorflow/tfjs-core";
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { WASM_ATTENTION_KERNELS } from "./wasm-attention-kernels.js";
import { WASM_FUSED_KERNELS } from "./wasm-fused-kernels.js";
import { wasmHeap, type WasmHeapBackend } from "./wasm-heap.js";

/**
 * x[begin : begin + size] as a new tensor, copied from the heap in place in runs as long as contiguity
 * allows: the axes after the last one that is cut are whole, so a run spans them all (unstacking
 * attention's [32, 128, 128] scores is 32 copies, not 4,096).
 */
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
  let cut = rank - 1; // the innermost axis not taken whole; the run starts there
  while (cut > 0 && size[cut] === x.shape[cut]) cut--;
  const run = tf.util.sizeFromShape(size.slice(cut)); // contiguous elements per copy
  const runs = to.length / Math.max(1, run);
  const index = new Array<number>(Math.max(0, cut)).fill(0); // position among the axes before the cut
  for (let r = 0; r < runs; r++) {
    let offset = (begin[cut] ?? 0) * (strides[cut] ?? 1);
    for (let axis = 0; axis < cut; axis++)
      offset += ((begin[axis] ?? 0) + (index[axis] ?? 0)) * (strides[axis] ?? 0);
    to.set(from.subarray(offset, offset + run), r * run);
    for (let axis = cut - 1; axis >= 0; axis--) {
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
    return sliceOnHeap(wasmHeap(backend), x, from, extent);
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
      const part = sliceOnHeap(wasmHeap(backend), value, begin, size);
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
      const part = sliceOnHeap(wasmHeap(backend), x, begin, size);
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
    const wasm = wasmHeap(backend);
    const rowSize = tf.util.sizeFromShape(x.shape.slice(1));
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

/**
 * The heap under a tensor as 32-bit integers where its elements are 4 bytes (float32, int32): moving bits
 * as integers copies them exactly, and one array type keeps V8's loops monomorphic (a loop that has seen
 * both Float32Array and Int32Array ran at half speed).
 */
function wordsOf(wasm: WasmHeapBackend, t: TensorInfo): Int32Array | Uint8Array {
  const values = wasm.typedArrayFromHeap(t);
  if (values instanceof Uint8Array) return values; // bool
  return new Int32Array(values.buffer, values.byteOffset, values.length);
}

/**
 * A matrix's transpose in 8 × 8 tiles, so that both the reads and the writes stay in cache lines. wasm's
 * own kernel writes a whole column at a time, a power-of-two stride apart that maps every write to the
 * same few cache sets: a [1024, 512] matrix took 3.2 ms against 1.8 here. Its permutations of 3 and more
 * axes (attention's heads) run at ~0.5 ns an element, faster than this loop, and stay with it.
 */
function transposeMatrix(
  from: Int32Array | Uint8Array,
  to: Int32Array | Uint8Array,
  rows: number,
  cols: number,
): void {
  const TILE = 8;
  for (let r0 = 0; r0 < rows; r0 += TILE)
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const rowEnd = Math.min(r0 + TILE, rows);
      const colEnd = Math.min(c0 + TILE, cols);
      for (let r = r0; r < rowEnd; r++)
        for (let c = c0; c < colEnd; c++) to[c * rows + r] = from[r * cols + c]!;
    }
}

/** wasm's own kernels that ours hand some inputs back to, saved as ours replace them. */
const wasmOwn = new Map<string, KernelConfig["kernelFunc"]>();

function wasmOwnKernel(name: string): KernelConfig["kernelFunc"] {
  const own = wasmOwn.get(name);
  if (own === undefined) throw new Error(`wasm's ${name} kernel was not registered before imtrain's`);
  return own;
}

const transpose: KernelConfig = {
  kernelName: tf.Transpose,
  backendName: "wasm",
  kernelFunc: (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { perm } = args.attrs as unknown as { perm: number[] };
    const [rows = 1, cols = 1] = x.shape;
    if (x.shape.length !== 2 || perm[0] !== 1) return wasmOwnKernel(tf.Transpose)(args);
    const wasm = wasmHeap(args.backend);
    const out = wasm.makeOutput([cols, rows], x.dtype);
    transposeMatrix(wordsOf(wasm, x), wordsOf(wasm, out), rows, cols);
    return out;
  },
};

/** x gathered along `axis` at `indices`, range-checked as tfjs's cpu backend does (batchDims > 0: wasm's own). */
const gatherV2: KernelConfig = {
  kernelName: tf.GatherV2,
  backendName: "wasm",
  kernelFunc: (args) => {
    const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number };
    if (batchDims !== 0) return wasmOwnKernel(tf.GatherV2)(args);
    const wasm = wasmHeap(args.backend);
    const along = tf.util.parseAxisParam(axis, x.shape)[0] ?? 0;
    const extent = x.shape[along] ?? 1;
    const outer = tf.util.sizeFromShape(x.shape.slice(0, along));
    const inner = tf.util.sizeFromShape(x.shape.slice(along + 1));
    const ids = wasm.typedArrayFromHeap(indices);
    for (const id of ids)
      // before the output is allocated: a throw must not leave it on the heap
      if (!(id >= 0 && id < extent))
        throw new Error(`GatherV2: the index value ${id} is not in [0, ${extent - 1}]`);
    const out = wasm.makeOutput(
      [...x.shape.slice(0, along), ...indices.shape, ...x.shape.slice(along + 1)],
      x.dtype,
    );
    const from = wordsOf(wasm, x);
    const to = wordsOf(wasm, out);
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < ids.length; j++) {
        const source = (o * extent + (ids[j] ?? 0)) * inner;
        to.set(from.subarray(source, source + inner), (o * ids.length + j) * inner);
      }
    return out;
  },
};

/**
 * x itself, its data shared under a reference count, as wasm's own Reshape and cpu's Identity do: the
 * engine clones every tensor a gradient saves (about 100 a d128 step), and wasm's Identity copied each
 * (7 ms of a d128 step by tf.profile; 0–2% of the step end to end). Safe because no kernel writes into
 * its inputs, and a variable's assign swaps its data rather than writing it.
 */
const identity: KernelConfig = {
  kernelName: tf.Identity,
  backendName: "wasm",
  kernelFunc: ({ inputs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    wasmHeap(backend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  },
};

/** Every kernel imtrain registers on wasm. */
export const WASM_TRAINING_KERNELS: readonly KernelConfig[] = [
  unsortedSegmentSum,
  slice,
  unpack,
  splitV,
  transpose,
  gatherV2,
  identity,
  ...WASM_FUSED_KERNELS,
  ...WASM_ATTENTION_KERNELS,
];

/** Registers ours, replacing wasm's own where it has one (idempotent). */
export function registerWasmTrainingKernels(): void {
  for (const kernel of WASM_TRAINING_KERNELS) {
    const registered = tf.getKernel(kernel.kernelName, "wasm");
    if (registered?.kernelFunc === kernel.kernelFunc) continue;
    if (registered !== undefined) {
      // The first one seen is wasm's own (a second copy of this module registering would otherwise be
      // saved as "wasm's own" and call itself).
      if (!wasmOwn.has(kernel.kernelName)) wasmOwn.set(kernel.kernelName, registered.kernelFunc);
      tf.unregisterKernel(kernel.kernelName, "wasm");
    }
    // wasm's setup binds its module's functions when the backend starts (its Transpose's, which its
    // reductions and our delegated permutations call): kept, so the order of registration and backend
    // start does not matter.
    tf.registerKernel({
      ...kernel,
      setupFunc: registered?.setupFunc ?? kernel.setupFunc,
      disposeFunc: registered?.disposeFunc ?? kernel.disposeFunc,
    });
  }
}
