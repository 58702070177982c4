// The ring over NATS: rank r listens on ring(r) and publishes to ring((r + 1) mod N) of its job. Messages
// are capped by the server's max_payload, which the ring's chunking respects.
//
// Core NATS is at-most-once and the ring does not retransmit: whatever was published to this rank while its
// connection was down is lost. So a disconnect fails the link at once (the exchange in flight fails by name
// now rather than at its deadline, and a neighbour running ahead cannot leave a hole in the next one); the
// caller builds a new transport once the connection is back. A lost message without a disconnect (a slow
// consumer's, say) is caught by the ring's progress deadline.
import { Events, type NatsConnection } from "nats";
import { jobSubjects } from "../../shared/protocol.js";
import { LinkEvents } from "./link-events.js";
import { checkRingPosition, type RingMessage, type RingTransport } from "./transport.js";

/** Publishes are buffered by the client; flushing every so often keeps that buffer bounded. */
const FLUSH_EVERY_BYTES = 8 * 2 ** 20;

export interface NatsRingOptions {
  /**
   * Which ring of the job this is, when a job re-forms its ring (count up from 0). Each generation has its
   * own subjects, so a late message of an abandoned ring never reaches the next one, whose exchanges (the
   * step, redone) would carry the same tags. Without it: the job's plain ring subjects.
   */
  readonly generation?: number;
}

/** Resolves once the subscription is known to the server, so no message sent to this rank can be missed. */
export async function createNatsRingTransport(
  nc: NatsConnection,
  job: string,
  rank: number,
  worldSize: number,
  options: NatsRingOptions = {},
): Promise<RingTransport> {
  checkRingPosition("NATS ring", rank, worldSize);
  const { generation } = options;
  if (generation !== undefined && !(Number.isSafeInteger(generation) && generation >= 0))
    throw new RangeError(`NATS ring: generation ${generation} is not a non-negative integer`);
  const maxMessageBytes = nc.info?.max_payload;
  if (maxMessageBytes === undefined) throw new Error("NATS ring: the connection has no server info yet");
  const subjects = jobSubjects(job);
  const subject = (of: number) =>
    generation === undefined ? subjects.ring(of) : `${subjects.ring(of)}.${generation}`;
  const inbox = subject(rank);
  const outbox = subject((rank + 1) % worldSize);
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
  const status = nc.status();
  void (async () => {
    for await (const event of status) {
      if (closing) return;
      if (event.type === Events.Disconnect)
        events.error(
          new Error(
            `NATS ring: disconnected from ${String(event.data)}; messages to rank ${rank} may be lost`,
          ),
        );
    }
  })().catch(() => undefined);
  const stopStatus = () => {
    if ("stop" in status && typeof status.stop === "function") status.stop();
  };
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
    async send(message: RingMessage): Promise<void> {
      // One NATS message is one ring message: frames would arrive as two unrelated messages.
      if (!(message instanceof Uint8Array)) throw new TypeError("NATS ring: frames are not carried");
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
      stopStatus();
      if (nc.isClosed()) return;
      // What we published reaches the server before we stop listening.
      await nc.flush();
      await subscription.drain();
    },
  };
}
