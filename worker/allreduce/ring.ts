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
// Floats travel in the platform's byte order (little-endian everywhere we run), as fp32 or narrowed to
// bf16/fp16 (wire-dtype.ts; additions stay fp32). Narrowed, the owner of each fully summed segment rounds
// its own copy to the wire format before the all-gather, so every rank still ends bit-identical; the last
// exactTailFloats of a buffer (a step's token counts and loss sums) form a bucket of their own that travels
// as fp32 whatever the wire format, since a count narrowed to bf16 is no longer exact above 256.
//
// Faults: every exchange runs against a progress deadline (deadline.ts), so a lost message or rank fails it
// with a RingTimeoutError instead of hanging; a broken link fails a rank waiting on it at once; copies of a
// chunk are dropped (a second copy is harmless: each span is added exactly once) and reported through
// onDropped, as are chunks nobody will read (mailbox.ts). After any failure the ring is out of step: every
// later call fails at once, and the caller builds a new ring (over a fresh link) to go on.
import { encodeMessage, encodeRingEnvelope, type RingChunk } from "../../shared/protocol.js";
import { ProgressDeadline } from "./deadline.js";
import { RingError, RingTimeoutError } from "./errors.js";
import { bucketSpans, chunkSpans, floatsPerChunk, segmentSpan, type Span } from "./layout.js";
import { RING_DROP_REASONS, RingMailbox, type RingDropReason } from "./mailbox.js";
import {
  describeRingTag,
  EXCHANGE_SLOTS,
  MAX_BUCKETS,
  MAX_WORLD_SIZE,
  packRingTag,
  unpackRingTag,
  type RingPhase,
} from "./tag.js";
import { decodeRingMessage, type RingMessage, type RingTransport } from "./transport.js";
import { narrowFloats, roundToWire, widenInto, wireBytesPerFloat, type WireDtype } from "./wire-dtype.js";

export const DEFAULT_BUCKET_BYTES = 32 * 2 ** 20;
/**
 * The largest chunk sent as one message (smaller if the transport's messages are): chunks are pipelined, a
 * rank adding chunk k while chunk k+1 is on the wire, instead of a whole segment crossing before any add.
 */
export const DEFAULT_CHUNK_BYTES = 256 * 2 ** 10;
/** The default progress deadline: the coordinator's default worker timeout. */
export const DEFAULT_MESSAGE_TIMEOUT_MS = 120_000;
/** setTimeout's limit. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export interface RingAllReduceOptions {
  /** Floats reduced per round of the ring, in bytes (default 32 MiB); bounds the data in flight per link. */
  readonly bucketBytes?: number;
  /**
   * Largest chunk per message, in bytes of fp32 (default DEFAULT_CHUNK_BYTES; capped by the transport's
   * limit): the same floats per chunk whatever the wire format.
   */
  readonly chunkBytes?: number;
  /**
   * Progress deadline of an exchange, in ms (default DEFAULT_MESSAGE_TIMEOUT_MS, 120 s): an exchange that
   * for this long neither receives a chunk it waits for nor completes a send fails on this rank with a
   * RingTimeoutError naming the rank it waited for. The first chunks of an exchange wait for the slowest
   * rank to finish its compute, so this must exceed the longest step's compute: the worker passes its job's
   * worker timeout, which by contract does.
   */
  readonly messageTimeoutMs?: number;
  /**
   * Told of every message the ring drops instead of using: `reason` is one of RING_DROP_REASONS ("duplicate",
   * "stale", "abandoned"), `detail` says which chunk and why, for a log line. Called synchronously from the
   * transport's message handler: it must not throw.
   */
  readonly onDropped?: (reason: RingDropReason, detail: string) => void;
  /** The format floats travel in (default fp32); every rank of a ring must use the same. */
  readonly wireDtype?: WireDtype;
  /** The last floats of every buffer that travel as fp32 whatever wireDtype (default 0). */
  readonly exactTailFloats?: number;
}

const FLOAT_BYTES = Float32Array.BYTES_PER_ELEMENT;

function mod(value: number, n: number): number {
  return ((value % n) + n) % n;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Adds `span` to `received` (sorted, disjoint). Returns "duplicate" (and adds nothing) if exactly this span
 * is there already, "overlap" if it overlaps another one.
 */
function addDisjoint(received: Span[], span: Span): "added" | "duplicate" | "overlap" {
  let at = received.length;
  while (at > 0 && (received[at - 1]?.start ?? 0) > span.start) at--;
  const before = received[at - 1];
  const after = received[at];
  if (before !== undefined && before.start === span.start && before.end === span.end) return "duplicate";
  if ((before !== undefined && before.end > span.start) || (after !== undefined && after.start < span.end))
    return "overlap";
  received.splice(at, 0, span);
  return "added";
}

/** One all-reduce in flight: its deadline, and what it waits for now (for the timeout's message). */
interface Exchange {
  readonly deadline: ProgressDeadline;
  /** Tag of the segment being received, while some of it is missing. */
  receiving: number | undefined;
  /** Tag of the segment being sent, while a send is unfinished. */
  sending: number | undefined;
}

export class RingAllReduce {
  private readonly mailbox: RingMailbox;
  private readonly bucketFloats: number;
  private readonly chunkFloats: number;
  private readonly previousRank: number;
  private readonly nextRank: number;
  private readonly messageTimeoutMs: number;
  private readonly wireDtype: WireDtype;
  private readonly exactTailFloats: number;
  /** Buckets of the latest exchange in wireDtype (the rest are the fp32 tail), to describe dropped chunks. */
  private narrowBuckets = 0;
  private readonly onDropped: ((reason: RingDropReason, detail: string) => void) | undefined;
  private readonly dropCounts = Object.fromEntries(RING_DROP_REASONS.map((reason) => [reason, 0])) as Record<
    RingDropReason,
    number
  >;
  /** Exchanges being reduced now, by slot (exchange mod 2^20): two in one slot would share tags. */
  private readonly running = new Map<number, Exchange>();
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
    this.messageTimeoutMs = options.messageTimeoutMs ?? DEFAULT_MESSAGE_TIMEOUT_MS;
    if (!(this.messageTimeoutMs >= 1 && this.messageTimeoutMs <= MAX_TIMEOUT_MS))
      throw new RangeError(
        `ring all-reduce: messageTimeoutMs ${this.messageTimeoutMs} is not in [1, ${MAX_TIMEOUT_MS}]`,
      );
    this.onDropped = options.onDropped;
    this.wireDtype = options.wireDtype ?? "fp32";
    this.exactTailFloats = options.exactTailFloats ?? 0;
    if (!(Number.isSafeInteger(this.exactTailFloats) && this.exactTailFloats >= 0))
      throw new RangeError(`ring all-reduce: exactTailFloats ${this.exactTailFloats} is not a count`);
    this.mailbox = new RingMailbox((reason, chunk, why) => this.drop(reason, chunk, why));
    this.previousRank = mod(rank - 1, worldSize);
    this.nextRank = mod(rank + 1, worldSize);
    // One rank needs no ring: leave the transport alone.
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!(chunkBytes >= FLOAT_BYTES))
      throw new RangeError(`ring all-reduce: chunkBytes ${chunkBytes} holds no float`);
    this.chunkFloats =
      worldSize === 1
        ? 0
        : Math.min(floatsPerChunk(transport.maxMessageBytes), Math.floor(chunkBytes / FLOAT_BYTES));
    if (worldSize === 1) return;
    transport.onMessage((bytes) => this.receive(bytes));
    // A broken link fails whoever waits for a chunk now (and later, unless it is already held); sends fail in
    // the transport. An exchange with everything it needs already held still completes.
    transport.onError((error) =>
      this.mailbox.fail(
        new RingError(rank, undefined, `the ring link failed: ${error.message}`, { cause: error }),
      ),
    );
  }

  /** Messages dropped so far, by reason (each also told to onDropped). */
  get dropped(): Readonly<Record<RingDropReason, number>> {
    return { ...this.dropCounts };
  }

  /** Chunks received and not yet used: early ones of an exchange this rank has not reached. */
  get heldChunks(): number {
    return this.mailbox.heldChunks;
  }

  /** Fails the exchanges in flight at once (a peer is gone) and every later one; their buffers are void. */
  abort(reason: string): void {
    this.fail(new RingError(this.transport.rank, undefined, `aborted: ${reason}`));
  }

  /**
   * Sums `buffer` over all ranks in place and returns it. Every rank calls it with the same length and the
   * same `exchange`: a non-negative integer used once per ring (e.g. the step), so that late copies of an
   * exchange's messages are told apart from early ones of the next; calls running at once need different
   * ones. Fails with a RingError (a RingTimeoutError when a message or rank is lost), after which the ring
   * is out of step and every later call fails at once.
   */
  async allReduce(buffer: Float32Array, exchange: number): Promise<Float32Array> {
    if (!Number.isSafeInteger(exchange) || exchange < 0)
      throw new RangeError(`ring all-reduce: exchange ${exchange} is not a non-negative integer`);
    if (this.transport.worldSize === 1) return buffer;
    const { rank } = this.transport;
    if (this.mailbox.error !== undefined) throw this.mailbox.error;
    const narrowEnd =
      this.wireDtype === "fp32" ? buffer.length : Math.max(0, buffer.length - this.exactTailFloats);
    const narrow = bucketSpans(narrowEnd, this.bucketFloats);
    const buckets =
      narrowEnd < buffer.length ? [...narrow, { start: narrowEnd, end: buffer.length }] : narrow;
    if (buckets.length > MAX_BUCKETS)
      throw new RangeError(
        `ring all-reduce: ${buckets.length} buckets exceed ${MAX_BUCKETS}; raise bucketBytes`,
      );
    const slot = exchange % EXCHANGE_SLOTS;
    if (this.running.has(slot))
      throw new RingError(rank, undefined, `exchange ${exchange} is already running (mod ${EXCHANGE_SLOTS})`);
    if (this.mailbox.hasFinished(slot))
      throw new RingError(
        rank,
        undefined,
        `exchange ${exchange} (mod ${EXCHANGE_SLOTS}) already ran on this ring: each exchange number is used once`,
      );
    const current: Exchange = {
      deadline: new ProgressDeadline(this.messageTimeoutMs, () => this.stalled(current)),
      receiving: undefined,
      sending: undefined,
    };
    this.narrowBuckets = narrow.length;
    this.running.set(slot, current);
    this.mailbox.open(slot);
    try {
      await Promise.race([this.reduceBuckets(buffer, exchange, buckets, current), current.deadline.expired]);
      this.mailbox.finish(slot);
      return buffer;
    } catch (error) {
      const failure =
        error instanceof RingError ? error : new RingError(rank, undefined, message(error), { cause: error });
      this.mailbox.abandon(slot);
      // The ring is out of step now: fail whatever else runs or waits on it, and every later call.
      this.fail(failure);
      throw failure;
    } finally {
      current.deadline.clear();
      this.running.delete(slot);
    }
  }

  private fail(error: RingError): void {
    this.mailbox.fail(error);
    for (const exchange of this.running.values()) exchange.deadline.fail(error);
  }

  /** The error an exchange that stopped moving fails with: what it waited for, from whom, for how long. */
  private stalled(current: Exchange): RingError {
    const { rank } = this.transport;
    const ms = this.messageTimeoutMs;
    if (current.receiving !== undefined)
      return new RingTimeoutError(
        rank,
        current.receiving,
        this.previousRank,
        ms,
        `no ring message from rank ${this.previousRank} for ${ms} ms; a lost message or a lost rank`,
      );
    if (current.sending !== undefined)
      return new RingTimeoutError(
        rank,
        current.sending,
        this.nextRank,
        ms,
        `a send to rank ${this.nextRank} has not completed for ${ms} ms; a stalled or lost rank`,
      );
    return new RingError(rank, undefined, `the exchange made no progress for ${ms} ms`);
  }

  private async reduceBuckets(
    buffer: Float32Array,
    exchange: number,
    buckets: readonly Span[],
    current: Exchange,
  ): Promise<void> {
    for (const [index, bucket] of buckets.entries())
      await this.reduceBucket(buffer, exchange, index, bucket, this.bucketDtype(index), current);
  }

  private async reduceBucket(
    buffer: Float32Array,
    exchange: number,
    index: number,
    bucket: Span,
    dtype: WireDtype,
    current: Exchange,
  ): Promise<void> {
    const { rank, worldSize } = this.transport;
    const segment = (i: number) => segmentSpan(bucket, worldSize, mod(i, worldSize));
    for (let k = 0; k < worldSize - 1; k++) {
      const tag = packRingTag(exchange, index, "reduce-scatter", k);
      await this.step(
        buffer,
        tag,
        segment(rank - k),
        segment(rank - k - 1),
        "reduce-scatter",
        dtype,
        current,
      );
    }
    // This rank now holds segment rank + 1 summed: what it keeps must equal what the others will receive.
    roundToWire(buffer.subarray(segment(rank + 1).start, segment(rank + 1).end), dtype);
    for (let k = 0; k < worldSize - 1; k++) {
      const tag = packRingTag(exchange, index, "all-gather", k);
      await this.step(buffer, tag, segment(rank + 1 - k), segment(rank - k), "all-gather", dtype, current);
    }
  }

  private async step(
    buffer: Float32Array,
    tag: number,
    outgoing: Span,
    incoming: Span,
    phase: RingPhase,
    dtype: WireDtype,
    current: Exchange,
  ): Promise<void> {
    try {
      await Promise.all([
        this.sendSegment(buffer, tag, outgoing, dtype, current),
        this.receiveSegment(buffer, tag, incoming, phase, dtype, current),
      ]);
    } catch (error) {
      if (error instanceof RingError) throw error;
      throw new RingError(this.transport.rank, tag, message(error), { cause: error });
    }
  }

  private async sendSegment(
    buffer: Float32Array,
    tag: number,
    segment: Span,
    dtype: WireDtype,
    current: Exchange,
  ) {
    current.sending = tag;
    for (const span of chunkSpans(segment, this.chunkFloats)) {
      const floats = buffer.subarray(span.start, span.end);
      const chunk: RingChunk = { tag, offset: span.start, data: narrowFloats(floats, dtype) };
      await this.transport.send(
        this.transport.carriesFrames === true
          ? { envelope: encodeRingEnvelope(chunk), payload: chunk.data }
          : encodeMessage(chunk),
      );
      current.deadline.throwIfEnded();
      current.deadline.progress();
    }
    current.sending = undefined;
  }

  /**
   * Waits for the chunks covering `segment` exactly once, adding them (reduce-scatter) or copying them. A
   * second copy of a chunk is dropped; a chunk that overlaps another, or strays outside, fails the exchange.
   */
  private async receiveSegment(
    buffer: Float32Array,
    tag: number,
    segment: Span,
    phase: RingPhase,
    dtype: WireDtype,
    current: Exchange,
  ) {
    current.receiving = tag;
    const received: Span[] = [];
    let missing = segment.end - segment.start;
    while (missing > 0) {
      const chunk = await this.mailbox.next(tag);
      // An exchange that failed while this waited leaves the buffer alone.
      current.deadline.throwIfEnded();
      const floats = chunk.data.length / wireBytesPerFloat(dtype);
      const span = { start: chunk.offset, end: chunk.offset + floats };
      const where = `chunk [${span.start}, ${span.end}) from rank ${this.previousRank}`;
      if (floats === 0 || !Number.isInteger(floats) || span.start < segment.start || span.end > segment.end)
        throw new RingError(
          this.transport.rank,
          tag,
          `${where} is not inside the segment [${segment.start}, ${segment.end})`,
        );
      const added = addDisjoint(received, span);
      if (added === "duplicate") {
        this.drop("duplicate", chunk, "a second copy of a chunk already received");
        continue;
      }
      if (added === "overlap")
        throw new RingError(this.transport.rank, tag, `${where} overlaps a chunk already received`);
      current.deadline.progress();
      missing -= floats;
      if (phase === "all-gather") widenInto(buffer.subarray(span.start, span.end), chunk.data, dtype);
      else this.addInto(buffer, span.start, chunk.data, dtype);
    }
    current.receiving = undefined;
  }

  /** buffer[start …] += the floats in `bytes` (fp32: read in place when 4-byte aligned), summed in fp32. */
  private addInto(buffer: Float32Array, start: number, bytes: Uint8Array, dtype: WireDtype): void {
    const floats = bytes.length / wireBytesPerFloat(dtype);
    let addend: Float32Array;
    if (dtype === "fp32" && bytes.byteOffset % FLOAT_BYTES === 0)
      addend = new Float32Array(bytes.buffer, bytes.byteOffset, floats);
    else {
      if (this.scratch.length < floats) this.scratch = new Float32Array(floats);
      addend = this.scratch.subarray(0, floats);
      widenInto(addend, bytes, dtype);
    }
    const target = buffer.subarray(start, start + floats);
    for (let i = 0; i < floats; i++) target[i]! += addend[i]!;
  }

  /** The format bucket `index` travels in: the exact tail's bucket, after the narrowed ones, is fp32. */
  private bucketDtype(index: number): WireDtype {
    return index < this.narrowBuckets ? this.wireDtype : "fp32";
  }

  private drop(reason: RingDropReason, chunk: RingChunk, why: string): void {
    this.dropCounts[reason]++;
    const bucket = unpackRingTag(chunk.tag).bucket;
    const end = chunk.offset + chunk.data.length / wireBytesPerFloat(this.bucketDtype(bucket));
    this.onDropped?.(
      reason,
      `rank ${this.transport.rank} dropped chunk [${chunk.offset}, ${end}) from rank ${this.previousRank}, ` +
        `${describeRingTag(chunk.tag)}: ${why}`,
    );
  }

  private receive(received: RingMessage): void {
    const { rank } = this.transport;
    const subject = `ring ${this.previousRank}→${rank}`;
    // Whole elements of the narrowest format this ring sends; receiveSegment checks each bucket's own.
    const bytesPerFloat = wireBytesPerFloat(this.wireDtype);
    let chunk: RingChunk;
    try {
      chunk = decodeRingMessage(received, subject, bytesPerFloat);
    } catch (error) {
      // Dropped, not fatal: anyone on the bus can publish on a ring subject. Had it been a real chunk
      // mangled on the way, the exchange misses it and fails by name at its deadline.
      this.dropCounts.malformed++;
      this.onDropped?.(
        "malformed",
        `rank ${rank} dropped a malformed message from rank ${this.previousRank}: ${message(error)}`,
      );
      return;
    }
    this.mailbox.deliver(chunk);
  }
}
