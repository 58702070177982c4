// N in-memory RingTransports wired into a ring, for all-reduce tests without a network. Delivery is
// asynchronous (batched per macrotask), each message (each frame, with `frames`) arrives at an odd byte
// offset of its own buffer (as decoded network data may), and `reorder` shuffles and randomly holds back
// messages, mixing tags.
import { mulberry32 } from "../../shared/random.js";
import { LinkEvents } from "../../worker/allreduce/link-events.js";
import { messageBytes, type RingMessage, type RingTransport } from "../../worker/allreduce/transport.js";

export interface MemoryRingOptions {
  readonly maxMessageBytes?: number;
  /** Shuffle each batch of messages on a link and hold about a third of them back a round. */
  readonly reorder?: boolean;
  readonly seed?: number;
  /** Carry chunks as frames (envelope, payload), as the ws transport does. */
  readonly frames?: boolean;
}

export interface MemoryRing {
  readonly transports: readonly RingTransport[];
  /** Hands `message` to `rank` as if its previous rank had sent it. */
  inject(rank: number, message: RingMessage): void;
  /** Breaks the link into `rank`, as a dropped connection would. */
  breakLink(rank: number, error: Error): void;
  /** Messages sent and the largest one, over all links. */
  readonly stats: { messages: number; bytes: number; largestMessageBytes: number };
}

/** A copy of `bytes` that starts at byte 1 of a fresh buffer: never 4-byte aligned. */
function unalignedBytes(bytes: Uint8Array): Uint8Array {
  const copy = new Uint8Array(bytes.length + 1).subarray(1);
  copy.set(bytes);
  return copy;
}

function unalignedCopy(message: RingMessage): RingMessage {
  return message instanceof Uint8Array
    ? unalignedBytes(message)
    : { envelope: unalignedBytes(message.envelope), payload: unalignedBytes(message.payload) };
}

export function createMemoryRing(worldSize: number, options: MemoryRingOptions = {}): MemoryRing {
  const maxMessageBytes = options.maxMessageBytes ?? 1 << 20;
  const random = mulberry32(options.seed ?? 1);
  const stats = { messages: 0, bytes: 0, largestMessageBytes: 0 };
  const events = Array.from({ length: worldSize }, () => new LinkEvents());
  const closed = Array.from({ length: worldSize }, () => false);
  // pending[r]: messages on their way to rank r
  const pending: RingMessage[][] = Array.from({ length: worldSize }, () => []);
  const scheduled = Array.from({ length: worldSize }, () => false);

  const deliver = (to: number) => {
    scheduled[to] = false;
    let batch = pending[to] ?? [];
    pending[to] = [];
    if (options.reorder) {
      for (let i = batch.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [batch[i], batch[j]] = [batch[j] as RingMessage, batch[i] as RingMessage];
      }
      const held = batch.filter(() => random() < 1 / 3);
      batch = batch.filter((message) => !held.includes(message));
      if (held.length > 0) schedule(to, held);
    }
    for (const message of batch) if (!closed[to]) events[to]?.message(message);
  };
  const schedule = (to: number, messages: RingMessage[]) => {
    pending[to]?.push(...messages);
    if (scheduled[to]) return;
    scheduled[to] = true;
    setImmediate(() => deliver(to));
  };

  const transports = events.map((linkEvents, rank): RingTransport => {
    const next = (rank + 1) % worldSize;
    return {
      rank,
      worldSize,
      maxMessageBytes,
      carriesFrames: options.frames === true,
      send: async (message) => {
        if (closed[rank]) throw new Error(`memory ring: rank ${rank} is closed`);
        if (message instanceof Uint8Array === (options.frames === true))
          throw new TypeError(`memory ring: sent ${options.frames ? "a whole message" : "frames"}`);
        const bytes = messageBytes(message);
        if (bytes > maxMessageBytes)
          throw new Error(`memory ring: ${bytes}-byte message exceeds ${maxMessageBytes}`);
        stats.messages++;
        stats.bytes += bytes;
        stats.largestMessageBytes = Math.max(stats.largestMessageBytes, bytes);
        schedule(next, [unalignedCopy(message)]);
      },
      onMessage: (handler) => linkEvents.onMessage(handler),
      onError: (handler) => linkEvents.onError(handler),
      close: async () => {
        closed[rank] = true;
      },
    };
  });

  return {
    transports,
    inject: (rank, message) => events[rank]?.message(unalignedCopy(message)),
    breakLink: (rank, error) => events[rank]?.error(error),
    stats,
  };
}
