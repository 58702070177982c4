// The one link a rank needs for a ring all-reduce: send to the next rank, hear from the previous one.
// Implementations: NATS subjects (nats-transport.ts), direct WebSockets (ws-transport.ts), memory (tests).

export interface RingTransport {
  readonly rank: number;
  readonly worldSize: number;
  /** Largest encoded message it can carry, in bytes; the ring cuts its chunks to fit. */
  readonly maxMessageBytes: number;
  /** Sends one message to rank (rank + 1) % worldSize; resolves once it is handed to the network. */
  send(message: Uint8Array): Promise<void>;
  /**
   * Sets the one handler for messages from rank (rank - 1 + worldSize) % worldSize. Messages that arrived
   * before it is set are held and delivered to it, in order, when it is set.
   */
  onMessage(handler: (message: Uint8Array) => void): void;
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
