// How an all-reduce cuts a buffer: buckets of bucketBytes → N segments per bucket → chunks that fit a message.
// Every rank computes the same cuts from (length, bucket size, worldSize), so nothing about them is sent.

/** [start, end) in float indices of the whole buffer. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

/**
 * Upper bound on the msgpack bytes of a chunk besides its float data: fixmap (1) + "tag" (4) + uint64 (9)
 * + "offset" (7) + uint64 (9) + "data" (5) + bin32 header (5) = 40, with room to spare.
 */
export const CHUNK_OVERHEAD_BYTES = 64;

/** How many floats one chunk carries so that its encoded message stays ≤ maxMessageBytes. */
export function floatsPerChunk(maxMessageBytes: number): number {
  const floats = Math.floor((maxMessageBytes - CHUNK_OVERHEAD_BYTES) / Float32Array.BYTES_PER_ELEMENT);
  if (!Number.isFinite(floats) || floats < 1)
    throw new RangeError(`a ring message of ${maxMessageBytes} bytes cannot carry even one float`);
  return floats;
}

export function bucketSpans(length: number, bucketFloats: number): Span[] {
  const spans: Span[] = [];
  for (let start = 0; start < length; start += bucketFloats)
    spans.push({ start, end: Math.min(length, start + bucketFloats) });
  return spans;
}

/** Segment i of N of a bucket: sizes differ by at most one float; the first (length mod N) get the extra. */
export function segmentSpan(bucket: Span, worldSize: number, index: number): Span {
  const length = bucket.end - bucket.start;
  const base = Math.floor(length / worldSize);
  const extra = length % worldSize;
  const start = bucket.start + index * base + Math.min(index, extra);
  return { start, end: start + base + (index < extra ? 1 : 0) };
}

export function chunkSpans(segment: Span, chunkFloats: number): Span[] {
  return bucketSpans(segment.end - segment.start, chunkFloats).map((span) => ({
    start: segment.start + span.start,
    end: segment.start + span.end,
  }));
}
