// A ring transport that counts the bytes it carries, for the all-reduce bandwidth metrics. Wrapping keeps
// counting out of the ring and out of each transport.
import { messageBytes, type RingMessage, type RingTransport } from "./transport.js";

export interface TrafficCounter {
  sent(bytes: number): void;
  received(bytes: number): void;
}

export function countingTransport(inner: RingTransport, counter: TrafficCounter): RingTransport {
  return {
    rank: inner.rank,
    worldSize: inner.worldSize,
    maxMessageBytes: inner.maxMessageBytes,
    ...(inner.carriesFrames === undefined ? {} : { carriesFrames: inner.carriesFrames }),
    send(message: RingMessage): Promise<void> {
      counter.sent(messageBytes(message));
      return inner.send(message);
    },
    onMessage(handler: (message: RingMessage) => void): void {
      inner.onMessage((message) => {
        counter.received(messageBytes(message));
        handler(message);
      });
    },
    onError: (handler) => inner.onError(handler),
    close: () => inner.close(),
  };
}
