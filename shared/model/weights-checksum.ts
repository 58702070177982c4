// FNV-1a over the float32 bits of a model's tensors, in the map's order: equal iff the weights are
// bit-identical. Ranks compare it across the ring; checkpoints record it for a run's KL reference.
export function weightsChecksum(weights: ReadonlyMap<string, Float32Array>): number {
  let hash = 0x811c9dc5;
  for (const values of weights.values()) {
    for (const bits of new Uint32Array(values.buffer, values.byteOffset, values.length)) {
      hash = Math.imul(hash ^ bits, 0x01000193);
    }
  }
  return hash >>> 0;
}
