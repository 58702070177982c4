// A ring transport that counts the bytes it carries, for the all-reduce bandwidth metrics. Wrapping keeps
// counting out of the ring and out of each transport.
import type { RingTransport } from "./transport.js";

export interface TrafficCounter {
  sent(bytes: number): void;
  received(bytes: number): void;
}

export function countingTransport(inner: RingTransport, counter: TrafficCounter): RingTransport {
  return {
    rank: inner.rank,
    worldSize: inner.worldSize,
    maxMessageBytes: inner.maxMessageBytes,
    send(message: Uint8Array): Promise<void> {
      counter.sent(message.length);
      return inner.send(message);
    },
    onMessage(handler: (message: Uint8Array) => void): void {
      inner.onMessage((message) => {
        counter.received(message.length);
        handler(message);
      });
    },
    onError: (handler) => inner.onError(handler),
    close: () => inner.close(),
  };
}
