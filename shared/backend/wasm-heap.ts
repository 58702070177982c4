// The few BackendWasm methods imtrain's own wasm kernels use, typed here rather than importing the
// backend's internals: its heap as typed arrays, its allocation and freeing, and its reference counts.
import type { DataType, TensorInfo } from "@tensorflow/tfjs-core";

export interface WasmHeapBackend {
  /** A view of the tensor's data in the wasm heap (no copy): Float32Array for float32, and so on. */
  typedArrayFromHeap(tensor: TensorInfo): Float32Array | Int32Array | Uint8Array;
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  incRef(dataId: TensorInfo["dataId"]): void;
  /** Frees a tensor's data (force: whatever its reference count), for scratch space a kernel allocated. */
  disposeData(dataId: TensorInfo["dataId"], force?: boolean): boolean;
}

/** A kernel's `backend` argument on wasm, typed. */
export function wasmHeap(backend: unknown): WasmHeapBackend {
  return backend as WasmHeapBackend;
}

/** A float32 tensor's data in the heap. */
export function floatsOf(wasm: WasmHeapBackend, t: TensorInfo): Float32Array {
  return wasm.typedArrayFromHeap(t) as Float32Array;
}
