// The one link a rank needs for a ring all-reduce: send to the next rank, hear from the previous one.
// Implementations: NATS subjects (nats-transport.ts), direct WebSockets (ws-transport.ts), memory (tests).
import { decodeRingChunk, decodeRingFrames, type RingChunk } from "../../shared/protocol.js";

/**
 * A ring chunk as two frames: its msgpack envelope (tag, offset, byte count) and its floats' raw bytes. A
 * transport that carries frames (ws: two messages on one ordered link) sends the floats from the gradient
 * buffer itself and hands the receiver them as they arrived: no copy into a message, and none out of it.
 */
export interface RingFrames {
  readonly envelope: Uint8Array;
  readonly payload: Uint8Array;
}

/** One message (a whole msgpack ring chunk), or a chunk's frames where the transport carries them. */
export type RingMessage = Uint8Array | RingFrames;

/** The chunk a message carries, checked (shared/protocol.ts); throws a ProtocolError naming `subject`. */
export function decodeRingMessage(message: RingMessage, subject: string, bytesPerFloat = 4): RingChunk {
  return message instanceof Uint8Array
    ? decodeRingChunk(message, subject, bytesPerFloat)
    : decodeRingFrames(message.envelope, message.payload, subject, bytesPerFloat);
}

/** Bytes a message puts on the wire, frames together. */
export function messageBytes(message: RingMessage): number {
  return message instanceof Uint8Array ? message.length : message.envelope.length + message.payload.length;
}

export interface RingTransport {
  readonly rank: number;
  readonly worldSize: number;
  /** Largest encoded message it can carry, in bytes (a frame, where it carries frames); chunks fit it. */
  readonly maxMessageBytes: number;
  /** Whether the ring should send it frames; otherwise, whole messages. */
  readonly carriesFrames?: boolean;
  /** Sends one message to rank (rank + 1) % worldSize; resolves once it is handed to the network. */
  send(message: RingMessage): Promise<void>;
  /**
   * Sets the one handler for messages from rank (rank - 1 + worldSize) % worldSize. Messages that arrived
   * before it is set are held and delivered to it, in order, when it is set.
   */
  onMessage(handler: (message: RingMessage) => void): void;
  /** Sets the one handler told when the link breaks: no more messages will arrive or leave. */
  onError(handler: (error: Error) => void): void;
  close(): Promise<void>;
}

/** Throws unless `rank` is a position in a ring of `worldSize`; `what` names the transport. */
export function checkRingPosition(what: string, rank: number, worldSize: number): void {
  const valid =
    Number.isSafeInteger(worldSize) &&
    worldSize >= 1 &&
    Number.isSafeInteger(rank) &&
    rank >= 0 &&
    rank < worldSize;
  if (!valid)
    throw new RangeError(`${what}: rank ${rank} of world size ${worldSize} is not a valid position`);
}
