// worker/allreduce/: summing a buffer over all ranks — the ring algorithm and its transports.
export {
  RingAllReduce,
  DEFAULT_BUCKET_BYTES,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_MESSAGE_TIMEOUT_MS,
  type RingAllReduceOptions,
} from "./ring.js";
export { RING_DROP_REASONS, type RingDropReason } from "./mailbox.js";
export type { RingTransport } from "./transport.js";
export { createNatsRingTransport, type NatsRingOptions } from "./nats-transport.js";
export {
  listenWsRing,
  WS_MAX_PAYLOAD_BYTES,
  WS_CONNECT_TIMEOUT_MS,
  type WsRingListener,
  type WsRingOptions,
  type WsConnectOptions,
} from "./ws-transport.js";
export { RingError, RingTimeoutError } from "./errors.js";
export { packRingTag, unpackRingTag, describeRingTag, MAX_WORLD_SIZE, type RingPhase } from "./tag.js";
export { CHUNK_OVERHEAD_BYTES, floatsPerChunk } from "./layout.js";
export { LinkEvents } from "./link-events.js";
