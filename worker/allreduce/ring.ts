// Ring all-reduce: sums a Float32Array elementwise over all ranks, in place, using only the link to the next
// rank. Per bucket of bucketBytes, cut into N segments (sizes differ by at most one float):
//
//   reduce-scatter, k = 0 .. N−2: rank r sends segment (r−k) mod N, adds the received segment (r−k−1) mod N
//                                 → rank r holds the full sum of segment (r+1) mod N
//   all-gather,     k = 0 .. N−2: rank r sends segment (r+1−k) mod N, copies the received segment (r−k) mod N
//
// Determinism: each segment s is summed at one rank after another in one fixed order,
// ((x_s + x_{s+1}) + x_{s+2}) + …, and the all-gather copies those bytes unchanged, so every rank ends with
// bit-identical floats, and the same ones on every run with the same world size and bucket size (a
// different world size sums in a different order). Every message is a chunk of a segment whose encoded size
// fits transport.maxMessageBytes, tagged (tag.ts) with its exchange, bucket, phase and step.
// Floats travel in the platform's byte order (little-endian everywhere we run).
import { decodeRingChunk, encodeMessage, type RingChunk } from "../../shared/protocol.js";
import { RingError } from "./errors.js";
import { bucketSpans, chunkSpans, floatsPerChunk, segmentSpan, type Span } from "./layout.js";
import { RingMailbox } from "./mailbox.js";
import { EXCHANGE_SLOTS, MAX_BUCKETS, MAX_WORLD_SIZE, packRingTag, type RingPhase } from "./tag.js";
import type { RingTransport } from "./transport.js";

export const DEFAULT_BUCKET_BYTES = 32 * 2 ** 20;

export interface RingAllReduceOptions {
  /** Floats reduced per round of the ring, in bytes (default 32 MiB); bounds the data in flight per link. */
  readonly bucketBytes?: number;
}

const FLOAT_BYTES = Float32Array.BYTES_PER_ELEMENT;

function mod(value: number, n: number): number {
  return ((value % n) + n) % n;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Bytes of buffer[span) as a Uint8Array over the (aligned) float memory itself. */
function bytesOf(buffer: Float32Array, span: Span): Uint8Array {
  return new Uint8Array(
    buffer.buffer,
    buffer.byteOffset + span.start * FLOAT_BYTES,
    (span.end - span.start) * FLOAT_BYTES,
  );
}

/** Adds `span` to `received` (sorted, disjoint) or returns false if it overlaps one already there. */
function addDisjoint(received: Span[], span: Span): boolean {
  let at = received.length;
  while (at > 0 && (received[at - 1]?.start ?? 0) > span.start) at--;
  const before = received[at - 1];
  const after = received[at];
  if ((before !== undefined && before.end > span.start) || (after !== undefined && after.start < span.end))
    return false;
  received.splice(at, 0, span);
  return true;
}

export class RingAllReduce {
  private readonly mailbox = new RingMailbox();
  private readonly bucketFloats: number;
  private readonly chunkFloats: number;
  private readonly previousRank: number;
  /** Exchange slots (exchange mod 2^20) being reduced now: two at once would share tags. */
  private readonly running = new Set<number>();
  /** Aligned memory for received bytes before they are added: decoded data may sit at any byte offset. */
  private scratch = new Float32Array(0);

  constructor(
    private readonly transport: RingTransport,
    options: RingAllReduceOptions = {},
  ) {
    const { rank, worldSize } = transport;
    if (!Number.isSafeInteger(worldSize) || worldSize < 1 || worldSize > MAX_WORLD_SIZE)
      throw new RangeError(`ring all-reduce: world size ${worldSize} is not in [1, ${MAX_WORLD_SIZE}]`);
    if (!Number.isSafeInteger(rank) || rank < 0 || rank >= worldSize)
      throw new RangeError(`ring all-reduce: rank ${rank} is not in [0, ${worldSize})`);
    const bucketBytes = options.bucketBytes ?? DEFAULT_BUCKET_BYTES;
    this.bucketFloats = Math.floor(bucketBytes / FLOAT_BYTES);
    if (!Number.isSafeInteger(this.bucketFloats) || this.bucketFloats < 1)
      throw new RangeError(`ring all-reduce: bucketBytes ${bucketBytes} holds no float`);
    this.previousRank = mod(rank - 1, worldSize);
    // One rank needs no ring: leave the transport alone.
    this.chunkFloats = worldSize === 1 ? 0 : floatsPerChunk(transport.maxMessageBytes);
    if (worldSize === 1) return;
    transport.onMessage((bytes) => this.receive(bytes));
    transport.onError((error) =>
      this.mailbox.fail(
        new RingError(rank, undefined, `the ring link failed: ${error.message}`, { cause: error }),
      ),
    );
  }

  /** Fails the exchange in flight (a peer is gone) and every later one; the buffer's partial sums are void. */
  abort(reason: string): void {
    this.mailbox.fail(new RingError(this.transport.rank, undefined, `aborted: ${reason}`));
  }

  /**
   * Sums `buffer` over all ranks in place and returns it. Every rank calls it with the same length and the
   * same `exchange` (a non-negative integer, e.g. the step; calls running at once need different ones).
   */
  async allReduce(buffer: Float32Array, exchange: number): Promise<Float32Array> {
    if (!Number.isSafeInteger(exchange) || exchange < 0)
      throw new RangeError(`ring all-reduce: exchange ${exchange} is not a non-negative integer`);
    if (this.transport.worldSize === 1) return buffer;
    const { rank } = this.transport;
    if (this.mailbox.error !== undefined) throw this.mailbox.error;
    const buckets = bucketSpans(buffer.length, this.bucketFloats);
    if (buckets.length > MAX_BUCKETS)
      throw new RangeError(
        `ring all-reduce: ${buckets.length} buckets exceed ${MAX_BUCKETS}; raise bucketBytes`,
      );
    const slot = exchange % EXCHANGE_SLOTS;
    if (this.running.has(slot))
      throw new RingError(rank, undefined, `exchange ${exchange} is already running (mod ${EXCHANGE_SLOTS})`);
    this.running.add(slot);
    try {
      for (const [index, bucket] of buckets.entries())
        await this.reduceBucket(buffer, exchange, index, bucket);
      return buffer;
    } catch (error) {
      const failure =
        error instanceof RingError ? error : new RingError(rank, undefined, message(error), { cause: error });
      // The ring is out of step now: fail whatever else waits on it, and every later call.
      this.mailbox.fail(failure);
      throw failure;
    } finally {
      this.running.delete(slot);
    }
  }

  private async reduceBucket(
    buffer: Float32Array,
    exchange: number,
    index: number,
    bucket: Span,
  ): Promise<void> {
    const { rank, worldSize } = this.transport;
    const segment = (i: number) => segmentSpan(bucket, worldSize, mod(i, worldSize));
    for (let k = 0; k < worldSize - 1; k++) {
      const tag = packRingTag(exchange, index, "reduce-scatter", k);
      await this.step(buffer, tag, segment(rank - k), segment(rank - k - 1), "reduce-scatter");
    }
    for (let k = 0; k < worldSize - 1; k++) {
      const tag = packRingTag(exchange, index, "all-gather", k);
      await this.step(buffer, tag, segment(rank + 1 - k), segment(rank - k), "all-gather");
    }
  }

  private async step(buffer: Float32Array, tag: number, outgoing: Span, incoming: Span, phase: RingPhase) {
    try {
      await Promise.all([
        this.sendSegment(buffer, tag, outgoing),
        this.receiveSegment(buffer, tag, incoming, phase),
      ]);
    } catch (error) {
      this.mailbox.discard(tag);
      if (error instanceof RingError) throw error;
      throw new RingError(this.transport.rank, tag, message(error), { cause: error });
    }
  }

  private async sendSegment(buffer: Float32Array, tag: number, segment: Span): Promise<void> {
    for (const span of chunkSpans(segment, this.chunkFloats)) {
      const chunk: RingChunk = { tag, offset: span.start, data: bytesOf(buffer, span) };
      await this.transport.send(encodeMessage(chunk));
    }
  }

  /** Waits for the chunks covering `segment` exactly once, adding them (reduce-scatter) or copying them. */
  private async receiveSegment(buffer: Float32Array, tag: number, segment: Span, phase: RingPhase) {
    const received: Span[] = [];
    let missing = segment.end - segment.start;
    while (missing > 0) {
      const chunk = await this.mailbox.next(tag);
      const floats = chunk.data.length / FLOAT_BYTES;
      const span = { start: chunk.offset, end: chunk.offset + floats };
      const where = `chunk [${span.start}, ${span.end}) from rank ${this.previousRank}`;
      if (floats === 0 || span.start < segment.start || span.end > segment.end)
        throw new RingError(
          this.transport.rank,
          tag,
          `${where} is not inside the segment [${segment.start}, ${segment.end})`,
        );
      if (!addDisjoint(received, span))
        throw new RingError(this.transport.rank, tag, `${where} overlaps a chunk already received`);
      missing -= floats;
      if (phase === "all-gather") {
        bytesOf(buffer, span).set(chunk.data);
      } else {
        if (this.scratch.length < floats) this.scratch = new Float32Array(floats);
        new Uint8Array(this.scratch.buffer, 0, chunk.data.length).set(chunk.data);
        for (let i = 0; i < floats; i++)
          buffer[span.start + i] = (buffer[span.start + i] ?? 0) + (this.scratch[i] ?? 0);
      }
    }
  }

  private receive(bytes: Uint8Array): void {
    const { rank } = this.transport;
    let chunk: RingChunk;
    try {
      chunk = decodeRingChunk(bytes, `ring ${this.previousRank}→${rank}`);
    } catch (error) {
      const reason = `malformed message from rank ${this.previousRank}: ${message(error)}`;
      this.mailbox.fail(new RingError(rank, undefined, reason, { cause: error }));
      return;
    }
    this.mailbox.deliver(chunk);
  }
}
