// The ring over NATS: rank r listens on ring(r) and publishes to ring((r + 1) mod N) of its job. Messages
// are capped by the server's max_payload, which the ring's chunking respects.
import type { NatsConnection } from "nats";
import { jobSubjects } from "../../shared/protocol.js";
import { LinkEvents } from "./link-events.js";
import { checkRingPosition, type RingTransport } from "./transport.js";

/** Publishes are buffered by the client; flushing every so often keeps that buffer bounded. */
const FLUSH_EVERY_BYTES = 8 * 2 ** 20;

/** Resolves once the subscription is known to the server, so no message sent to this rank can be missed. */
export async function createNatsRingTransport(
  nc: NatsConnection,
  job: string,
  rank: number,
  worldSize: number,
): Promise<RingTransport> {
  checkRingPosition("NATS ring", rank, worldSize);
  const maxMessageBytes = nc.info?.max_payload;
  if (maxMessageBytes === undefined) throw new Error("NATS ring: the connection has no server info yet");
  const subjects = jobSubjects(job);
  const inbox = subjects.ring(rank);
  const outbox = subjects.ring((rank + 1) % worldSize);
  const events = new LinkEvents();
  let closing = false;
  const subscription = nc.subscribe(inbox, {
    callback: (error, msg) => {
      if (error !== null)
        events.error(new Error(`NATS ring: subscription to ${inbox} failed: ${error.message}`));
      else events.message(msg.data);
    },
  });
  await nc.flush();
  nc.closed().then(
    (error) => {
      if (!closing)
        events.error(new Error(`NATS ring: the connection closed${error ? `: ${error.message}` : ""}`));
    },
    () => undefined,
  );

  let unflushedBytes = 0;
  return {
    rank,
    worldSize,
    maxMessageBytes,
    async send(message: Uint8Array): Promise<void> {
      nc.publish(outbox, message);
      unflushedBytes += message.length;
      if (unflushedBytes >= FLUSH_EVERY_BYTES) {
        unflushedBytes = 0;
        await nc.flush();
      }
    },
    onMessage: (handler) => events.onMessage(handler),
    onError: (handler) => events.onError(handler),
    async close(): Promise<void> {
      if (closing) return;
      closing = true;
      if (nc.isClosed()) return;
      // What we published reaches the server before we stop listening.
      await nc.flush();
      await subscription.drain();
    },
  };
}
